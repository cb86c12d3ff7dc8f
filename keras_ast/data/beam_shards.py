"""Writing a shard directory with an Apache Beam pipeline.

`make_shards_beam` (`keras-ast make-shards --runner beam`) builds the shards
`shards.make_shards` builds, through Beam, so that the decoding runs on the
runner the options name: DirectRunner on this machine, or Dataflow, Flink
or Spark for AudioSet-sized sources. It shares every step with the local
writer: the listing, refusal and resumption (`shards.start_job`), decoding
(`shards.decode_file`), one shard's writing (`shards.write_shard`) and the
`dataset.json` (`shards.finish_job`).

The pipeline:
1. reads the listing, which this process writes into OUTPUT as JSON lines
   (a file rather than an in-memory `Create`: millions of entries do not
   fit in a job graph);
2. decodes each file (workers in parallel); failures go to the skipped
   report, the other clips to the next step;
3. numbers the decoded clips in the write order of the local writer (the
   listing shuffled with `seed`, failures left out) and cuts that sequence
   into `ceil(audio bytes / shard size)` contiguous, equal-count shards;
4. writes each shard (atomically, with its sha256) and a report of the
   shards and skipped files, which this process turns into `dataset.json`.

Read in shard order, the records are the local writer's, in its order;
only the shard boundaries differ (equal counts here, a size limit there).
Workers must see SOURCE and OUTPUT at the same paths (this machine for
DirectRunner; a shared file system such as NFS or a Cloud Storage FUSE
mount on a cluster) and have `keras-ast[data]` installed.
"""

import bisect
import json
import os
import shlex

from keras_ast.data import shards
from keras_ast.data.info import INFO_FILE
from keras_ast.data.info import ShardInfo
from keras_ast.data.info import SkippedFile
from keras_ast.data.info import shard_file
from keras_ast.utils.files import TEMP_PREFIX
from keras_ast.utils.files import atomic_write
from keras_ast.utils.files import read_json
from keras_ast.utils.files import write_json

# Temporary files of a run, in OUTPUT; their `.tmp-shard-` prefix makes
# `info.leftovers` (and so `resume`) find them after a crash.
LISTING_FILE = TEMP_PREFIX + "shard-listing.jsonl"
REPORT_FILE = TEMP_PREFIX + "shard-report.json"
DEFAULT_OPTIONS = "--runner=DirectRunner"


def _import_beam():
    try:
        import apache_beam
    except ImportError as error:
        raise ImportError(
            "Building shards with --runner beam needs Apache Beam: "
            "`pip install keras-ast[beam]` (or `pip install apache-beam`)."
        ) from error
    return apache_beam


def _parse_options(beam_options):
    """Beam's `PipelineOptions` from a command-line string or a list."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if beam_options is None:
        beam_options = DEFAULT_OPTIONS
    if isinstance(beam_options, str):
        beam_options = shlex.split(beam_options)
    return PipelineOptions(list(beam_options))


# --- The pipeline's steps (module functions: workers unpickle them) --------


def _decode(line, label_ids):
    """A listing line -> a clip, or a skipped file on the "skipped" output."""
    from apache_beam import pvalue

    position, path, name, labels = json.loads(line)
    audio, reason = shards.decode_file(path)
    if reason is not None:
        yield pvalue.TaggedOutput(
            "skipped", (position, [name, reason]))
        return
    ids = sorted(label_ids[label] for label in labels)
    # float32 bytes: what Beam's coders move best.
    yield position, name, labels, ids, audio.astype("<f4").tobytes()


def _count_and_bytes(pairs):
    """Sums `(clips, audio bytes)` pairs (a combine: also of partial sums)."""
    clips = num_bytes = 0
    for n, b in pairs:
        clips += n
        num_bytes += b
    return clips, num_bytes


def _shard_of(clip, totals, failed, target_bytes):
    """`(shard index, clip)`: contiguous, equal-count cuts of the order."""
    num_clips, num_bytes = totals
    num_shards = min(num_clips, max(1, -(-num_bytes // target_bytes)))
    # The clip's rank among the clips that decoded, in write order.
    rank = clip[0] - bisect.bisect_left(failed, clip[0])
    return rank * num_shards // num_clips, clip


def _write(keyed, output, record_format):
    """Writes one shard; `(index, its dataset.json entry, longest clip)`
    (the entry as JSON: the report is a JSON file)."""
    import numpy as np

    from keras_ast.data.sources import Entry

    index, clips = keyed
    clips = sorted(clips, key=lambda clip: clip[0])
    shard, longest = shards.write_shard(
        output, index,
        ((Entry(None, name, tuple(labels)), np.frombuffer(audio, "<f4"), ids)
         for _, name, labels, ids, audio in clips),
        record_format,
    )
    return index, shard.to_json(), longest


def _write_report(_, path, written, skipped):
    write_json(path, {"shards": sorted(written), "skipped": sorted(skipped)})


def _build_pipeline(pipeline, job, listing, report):
    beam = _import_beam()
    decoded = (
        pipeline
        | "ReadListing" >> beam.io.ReadFromText(listing)
        # The listing is one file: spread its lines over the workers.
        | "Spread" >> beam.Reshuffle()
        | "Decode" >> beam.FlatMap(_decode, job.label_ids).with_outputs(
            "skipped", main="clips")
    )
    clips, skipped = decoded.clips, decoded.skipped
    totals = (
        clips
        | "Sizes" >> beam.Map(lambda clip: (1, len(clip[4])))
        | "Totals" >> beam.CombineGlobally(_count_and_bytes)
    )
    failed = (
        skipped
        | "FailedPositions" >> beam.Map(lambda item: item[0])
        | "FailedList" >> beam.combiners.ToList()
        | "Sort" >> beam.Map(sorted)
    )
    written = (
        clips
        | "AssignShards" >> beam.Map(
            _shard_of, beam.pvalue.AsSingleton(totals),
            beam.pvalue.AsSingleton(failed), job.target_bytes)
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.Map(_write, job.output, job.format)
        | "ShardList" >> beam.combiners.ToList()
    )
    skipped_list = skipped | "SkippedList" >> beam.combiners.ToList()
    _ = (
        pipeline
        | "Once" >> beam.Create([None])
        | "WriteReport" >> beam.Map(
            _write_report, report, beam.pvalue.AsSingleton(written),
            beam.pvalue.AsSingleton(skipped_list))
    )


def make_shards_beam(source, output, format="tfrecord", shard_size_mb=64,
                     beam_options=None, resume=False, seed=0,
                     unlabelled=False):
    """Decodes an audio collection, labelled or not, into shards with Beam.

    The same shards as `shards.make_shards` (same records in the same
    order, labels, counts and skipped-file report in `dataset.json`), cut
    into equal-count shards of about `shard_size_mb` each; the decoding
    runs where `beam_options` say (see the module doc).

    Args:
        source: a class-folder directory, a folder of unlabelled audio, a
            CSV manifest or a JSON-lines manifest (see
            `keras_ast.data.sources`; what is unlabelled, as for
            `make_shards`).
        output: the shard directory to write.
        format: `"tfrecord"` (tf.data) or `"arrayrecord"` (Grain).
        shard_size_mb: the average shard size, in megabytes of float32
            audio.
        beam_options: Beam's pipeline options, a command-line string or a
            list (default `"--runner=DirectRunner"`), e.g.
            `"--runner=DataflowRunner --project=P --region=R
            --temp_location=gs://B/tmp"`.
        resume: as `make_shards`: return a finished `output`'s info, or
            start an unfinished one over.
        seed: the shuffle of the write order; None keeps the sorted order.
        unlabelled: as `make_shards`: unlabelled shards of every audio
            file under the folder, or of every clip of the manifest.

    Returns:
        The `DatasetInfo` written as `dataset.json`.

    Raises:
        ImportError: Apache Beam is not installed.
        FileExistsError, FileNotFoundError, ValueError: as `make_shards`.

    Examples:
    >>> info = make_shards_beam(
    ...     "audio/train", "shards/train", format="arrayrecord",
    ...     beam_options="--runner=DirectRunner --direct_num_workers=4 "
    ...     "--direct_running_mode=multi_processing")
    """
    beam = _import_beam()
    options = _parse_options(beam_options)
    job, existing = shards.start_job(source, output, format, shard_size_mb,
                                     resume, seed, unlabelled)
    if existing is not None:
        return existing
    listing = os.path.join(job.output, LISTING_FILE)
    report = os.path.join(job.output, REPORT_FILE)
    try:
        with atomic_write(listing) as f:
            for position, entry in enumerate(job.order):
                f.write(json.dumps([position, entry.path,
                                    entry.name, list(entry.labels)],
                                   ensure_ascii=False) + "\n")
        with beam.Pipeline(options=options) as pipeline:
            _build_pipeline(pipeline, job, listing, report)
        result = read_json(report)
    finally:
        for path in (listing, report):
            if os.path.exists(path):
                os.remove(path)
    written = [ShardInfo.from_json(shard) for _, shard, _ in result["shards"]]
    names = [shard.file for shard in written]
    if names != [shard_file(i, job.format) for i in range(len(written))]:
        raise RuntimeError(
            f"The Beam pipeline wrote shards {names}"
            f", not a complete numbered series; {job.output} has no "
            f"{INFO_FILE}. Run again with resume to start over."
        )
    longest = max((n for _, _, n in result["shards"]), default=0)
    skipped = [SkippedFile(*item) for _, item in result["skipped"]]
    return shards.finish_job(job, written, longest, skipped)
