"""SE-RL: an LLM as a reinforcement-learning researcher for financial order execution

Modules:

- `serl.loop.cluster`: Where the heavy work of a run goes: the outer loop's candidate trainings, the learned baselines of each seed and the datasets of `serl reproduce`. Locally they are processes on this machine; with `--executor ray` they are Ray tasks and actors with resource requests, on as many nodes as the cluster has."""

__version__ = "0.1.0"
