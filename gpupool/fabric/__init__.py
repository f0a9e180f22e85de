"""The InfiniBand fabric model: discovery, generation, classification, compiled arrays, export."""
