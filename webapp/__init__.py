"""The Gradio web app: Write, Arena, Leaderboard and Data tabs. Importing it imports nothing heavy."""
