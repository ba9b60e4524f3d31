"""Centralized vs independent critic: does a centralized critic lower the policy-gradient variance?

Part 1 (`variance`, `variance_report`): the textbook REINFORCE experiment on one-step rendezvous.
Part 2 (`critic_training`, `critic_training_report`): MAPPO vs IPPO trained on particle-spread.
`python -m studies.critic_variance --help` runs either part; results and findings are in README.md.
"""
