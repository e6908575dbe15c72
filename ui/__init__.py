"""Streamlit helpers shared by app.py and app_pages/ (the app layer; no logic here)."""
