"""The bottom floor: facts every layer shares and that import nothing else of the project (errors)."""
