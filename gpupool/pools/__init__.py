"""Declarative GPU pools, borrowing and fair-share queues (`gpupool pool apply|status`)."""
