"""Datasets: MNIST, images, video, neural recordings, stimuli."""
