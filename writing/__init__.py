"""The stored writing workflow, above ``generation``: a text generated into its row
(``writing.store``), a row continued (``writing.continuation``), the row kept in step with the
stream (``writing.recording``), who may read or continue a text (``writing.access``), the
status and ending sets (``writing.status``) and the model entries with their defaults
(``writing.models``). It knows nothing of Gradio, and nothing of how a template plans or writes:
that is ``generation``'s."""
