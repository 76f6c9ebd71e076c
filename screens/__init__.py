"""The Textual face of edgetui. Depends on `edgetui`; `edgetui` never imports this package."""
