"""The web layer editor (`layered app`, `python app.py`): Gradio UI in `ui`, per-session state in `session`."""
