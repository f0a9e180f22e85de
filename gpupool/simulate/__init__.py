"""What-if replay of a workload on a fabric under several placement and scheduling policies."""
