"""Differential graph fuzzing of lowp's engine against ONNX Runtime."""
