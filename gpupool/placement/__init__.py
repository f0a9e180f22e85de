"""Minimal-hop GPU placement: exact tree DP on ultrametric fabrics, seed-and-grow on other graphs."""

from gpupool.placement.model import Cost, FreeState, Placement, Request

__all__ = ["Cost", "FreeState", "Placement", "Request"]
