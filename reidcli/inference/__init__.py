"""Inference: run a trained model over images and stream features into a feature bank."""
