"""DefectAug core: everything the app and the CLI do, importable without Streamlit."""
__version__ = "0.1.0"
