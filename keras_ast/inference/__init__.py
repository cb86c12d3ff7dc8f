"""From host audio to labels: waveform rules, classification, tagging, timelines."""
