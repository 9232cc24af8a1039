"""Reusable PyMC building blocks shared by markets (installed as ``iff.models``)."""
