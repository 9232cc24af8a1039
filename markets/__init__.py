"""Built-in market plugins (installed as ``iff.markets``); see ``iff.registry``."""
