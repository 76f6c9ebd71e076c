"""edgetui: a trustworthy local-LLM product for edge devices (core library, no Textual)."""

__version__ = "0.1.0"
