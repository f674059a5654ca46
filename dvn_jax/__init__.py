"""dvn_jax: Deep Value Networks (Gygli, Norouzi & Angelova, ICML 2017) in JAX."""

__version__ = "0.1.0"
