"""Dataset tooling: audio shards, tf.data and Grain pipelines, augmentation."""
