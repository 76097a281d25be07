"""COEF-VQ's ML library. Importable without Django: paths, arrays and text in, dataclasses out."""
