"""From host audio to labels: waveform rules, files, classify, tag."""
