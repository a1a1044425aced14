"""Data sets and image pipelines (pure torch/torchvision; the Lightning data module wraps them)."""
