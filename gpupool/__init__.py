"""gpupool: topology-aware GPU pooling for Slurm clusters on InfiniBand fabrics."""

__version__ = "0.1.0"
