"""Evaluation sets and their scoring, without Django: the product's evaluation runs and bench/ use the same code."""
