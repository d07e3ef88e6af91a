"""manifpt: fingerprints of generative models (ManiFPT)."""
__version__ = "0.1.0"
