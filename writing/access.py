"""Who may read or continue a stored text. Decided here, on the server, for every caller.

- read: the author, and researchers and admins (they see every row in the Data tab anyway);
- continue: the author only (a continuation writes into the author's row).

The arena's own blinding (texts of a battle an annotator has not voted on yet) is the arena's,
checked on top of this by the pages that show texts.
"""

from __future__ import annotations

from typing import Optional

READ_ANY_ROLES = frozenset({"researcher", "admin"})


def may_read(*, user_id: Optional[int], role: Optional[str], author_id: Optional[int]) -> bool:
    return author_id == user_id or role in READ_ANY_ROLES


def may_continue(*, user_id: Optional[int], author_id: Optional[int]) -> bool:
    return author_id == user_id
