"""Run directories: the run config and its registry of learners, training in checkpointed chunks,
evaluation, learning curves and the marl-eval export, and what keeps a run safe (atomic files,
locks, signal handling, memory estimates). The layout of a run directory is in `runs.layout`."""
