"""The Streamlit dashboard's support code: state and URL, sidebar, datasets, and pure chart functions."""
