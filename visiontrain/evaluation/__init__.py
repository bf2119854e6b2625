"""Evaluation of a run or an exported model: records, metrics, images, reports."""
