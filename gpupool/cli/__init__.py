"""Thin click shells over the gpupool library: parse options, call the library, render."""
