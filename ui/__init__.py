"""Streamlit helpers shared by app.py and pages/ (the app layer; no logic here)."""
