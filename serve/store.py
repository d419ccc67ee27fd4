"""Conversations on disk: one SQLite file, each turn stored once, bounded by a retention policy.

Tables (schema version in ``PRAGMA user_version``):

- ``conversations``: id, the model id that last spoke in it, turn count, created/updated;
- ``judgments``: the conversation's current judgment (its JSON), the image it is about (sha1)
  and the label set; one row per conversation, rewritten only when the judgment changes
  (a new image, a relabel);
- ``messages``: one row per message (the user's text, the reply), written once;
- ``evicted``: the ids of conversations the retention policy deleted (when and why), so a
  client that continues one is told so instead of silently starting over.

So a follow-up costs two small rows, never a copy of the history or of the judgment: the file
grows linearly in turns. Bounds (:class:`Limits`): the text of one message, the turns of one
conversation (both refused with an error the client sees), and retention: conversations older
than ``max_age_s`` and the least recently used beyond ``max_conversations`` or beyond
``max_db_bytes`` are deleted, oldest first and never the conversation being written (their
pages are reused, and returned to the file system by incremental vacuum). The size is checked
after every write (three PRAGMAs: cheap); one conversation may hold at most
``CONVERSATION_SHARE`` of ``max_db_bytes`` (more: its next turn is refused).

Only JSON is stored and read back through pydantic: nothing in the file can make the server
import or call code.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kever.agent.judgment import Judgment

log = logging.getLogger("kever.serve")

SCHEMA_VERSION = 1
#: the age and count rules run when a conversation is created and after every this many turns;
#: the size rule runs after every write
PRUNE_EVERY = 50
#: the most of ``max_db_bytes`` one conversation may hold (more: its next turn is refused)
CONVERSATION_SHARE = 0.5
#: bytes the write-ahead log file is truncated to after each checkpoint
WAL_LIMIT = 4 * 1024 * 1024
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  turns INTEGER NOT NULL DEFAULT 0,
  created REAL NOT NULL,
  updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated);
CREATE TABLE IF NOT EXISTS judgments (
  conversation TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
  judged_key TEXT,
  label_set TEXT NOT NULL,
  judgment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  conversation TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  n INTEGER NOT NULL,
  role TEXT NOT NULL,
  content TEXT NOT NULL,
  image_key TEXT,
  created REAL NOT NULL,
  PRIMARY KEY (conversation, n)
);
CREATE TABLE IF NOT EXISTS evicted (
  id TEXT PRIMARY KEY,
  at REAL NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evicted_at ON evicted(at);
"""


class Limits(BaseModel):
    """What one client can make the server keep."""

    max_message_chars: int = Field(16_000, ge=1, description="longest user message text kept (longer: refused)")
    max_turns: int = Field(200, ge=1, description="turns (a message and its reply) per conversation (more: refused)")
    max_conversations: int = Field(10_000, ge=1, description="conversations kept; the least recently used go first")
    max_age_s: float = Field(30 * 86400, gt=0, description="conversations unused for longer are deleted")
    max_db_bytes: int = Field(1024**3, ge=1 << 20, description="database size kept; the least recently used go first")


class Conversation(BaseModel):
    """A conversation as loaded for one turn."""

    id: str
    model: str | None = None  # None: a new conversation
    turns: int = 0
    judged_key: str | None = None
    label_set: Any = None  # name or list of labels of the stored judgment
    judgment: Judgment | None = None
    stored_chars: int = 0  # characters of text and judgment it holds
    evicted: dict | None = None  # {"at", "reason"} when the retention policy deleted it


class Store:
    """Thread-safe (one connection behind a lock; the server writes one turn at a time per
    conversation, and SQLite serialises writers anyway)."""

    def __init__(self, path: Path, limits: Limits | None = None):
        self.path = Path(path)
        self.limits = limits or Limits()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._writes = 0
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        c = self._conn
        if c.execute("PRAGMA page_count").fetchone()[0] == 0:
            c.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect before the first table
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")  # the WAL file is cut back to this after a checkpoint
        c.execute("PRAGMA foreign_keys=ON")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            from kever.errors import ConfigError

            raise ConfigError(f"conversation database {self.path} has schema {version}, newer than this kever's "
                              f"{SCHEMA_VERSION}", "use a newer kever or another --db")
        c.executescript(SCHEMA)
        c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='checkpoints'").fetchone():
            log.warning("%s also holds conversations of an earlier kever serve (LangGraph checkpoints); they are not "
                        "carried over: use another --db, or drop its tables checkpoints and writes", self.path)
        self.prune()

    # ------------------------------------------------------------------ reads

    def load(self, cid: str) -> Conversation:
        with self._lock:
            row = self._conn.execute("SELECT model, turns FROM conversations WHERE id=?", (cid,)).fetchone()
            if row is None:
                gone = self._conn.execute("SELECT at, reason FROM evicted WHERE id=?", (cid,)).fetchone()
                return Conversation(id=cid, evicted={"at": gone[0], "reason": gone[1]} if gone else None)
            j = self._conn.execute("SELECT judged_key, label_set, judgment FROM judgments WHERE conversation=?",
                                   (cid,)).fetchone()
            chars = self._conn.execute("SELECT COALESCE(SUM(LENGTH(content)), 0) FROM messages WHERE conversation=?",
                                       (cid,)).fetchone()[0]
        conv = Conversation(id=cid, model=row[0], turns=row[1], stored_chars=chars + (len(j[2]) if j else 0))
        if j is not None:
            conv.judged_key, conv.label_set = j[0], json.loads(j[1])
            conv.judgment = Judgment.model_validate_json(j[2])
        return conv

    def messages(self, cid: str) -> list[dict]:
        with self._lock:
            rows = self._conn.execute("SELECT n, role, content, image_key FROM messages WHERE conversation=? ORDER BY n",
                                      (cid,)).fetchall()
        return [{"n": n, "role": r, "content": c, "image_key": k} for n, r, c, k in rows]

    def stats(self) -> dict:
        with self._lock:
            conversations = self._conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
            messages = self._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            used = self._used_bytes()
        return {"conversations": conversations, "messages": messages, "db_bytes": used}

    def _used_bytes(self) -> int:
        c = self._conn
        pages = c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]
        return pages * c.execute("PRAGMA page_size").fetchone()[0]

    # ------------------------------------------------------------------ writes

    def save_turn(self, conv: Conversation, model: str, user_text: str, image_key: str | None, reply: str,
                  judgment: Judgment | None, judged_key: str | None, label_set: Any, judgment_changed: bool) -> None:
        """Store one turn: the user message and the reply (and the judgment when it changed)."""
        now = time.time()
        new = conv.model is None
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                if new:
                    c.execute("INSERT INTO conversations(id, model, turns, created, updated) VALUES (?,?,1,?,?)",
                              (conv.id, model, now, now))
                    c.execute("DELETE FROM evicted WHERE id=?", (conv.id,))
                else:
                    c.execute("UPDATE conversations SET model=?, turns=turns+1, updated=? WHERE id=?", (model, now, conv.id))
                n = c.execute("SELECT COALESCE(MAX(n), -1) + 1 FROM messages WHERE conversation=?", (conv.id,)).fetchone()[0]
                c.executemany("INSERT INTO messages(conversation, n, role, content, image_key, created) VALUES (?,?,?,?,?,?)",
                              [(conv.id, n, "user", user_text, image_key, now), (conv.id, n + 1, "assistant", reply, None, now)])
                if judgment_changed and judgment is not None:
                    c.execute("INSERT INTO judgments(conversation, judged_key, label_set, judgment) VALUES (?,?,?,?) "
                              "ON CONFLICT(conversation) DO UPDATE SET judged_key=excluded.judged_key, "
                              "label_set=excluded.label_set, judgment=excluded.judgment",
                              (conv.id, judged_key, json.dumps(label_set), judgment.model_dump_json()))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        self._writes += 1
        if new or self._writes % PRUNE_EVERY == 0:
            self.prune(keep=conv.id)
        else:
            with self._lock:
                over = self._used_bytes() > self.limits.max_db_bytes
            if over:
                self.prune(keep=conv.id)

    def too_large(self, conv: Conversation, text: str) -> bool:
        """Would this turn take the conversation past its share of the database cap?"""
        return (conv.stored_chars + len(text)) * 1.1 > self.limits.max_db_bytes * CONVERSATION_SHARE

    def prune(self, now: float | None = None, keep: str | None = None) -> int:
        """Apply the retention policy, never deleting ``keep`` (the conversation being written);
        returns how many conversations were deleted. Each deleted id is remembered in ``evicted``."""
        lim = self.limits
        now = time.time() if now is None else now
        keep = keep or ""
        with self._lock:
            c = self._conn

            def evict(where: str, args: tuple, reason: str) -> int:
                ids = [r[0] for r in c.execute(f"SELECT id FROM conversations WHERE id != ? AND {where}", (keep, *args))]
                if not ids:
                    return 0
                c.execute("BEGIN IMMEDIATE")
                try:
                    c.executemany("INSERT OR REPLACE INTO evicted(id, at, reason) VALUES (?,?,?)",
                                  [(i, now, reason) for i in ids])
                    c.executemany("DELETE FROM conversations WHERE id=?", [(i,) for i in ids])
                    c.execute("COMMIT")
                except BaseException:
                    c.execute("ROLLBACK")
                    raise
                return len(ids)

            deleted = evict("updated < ?", (now - lim.max_age_s,), f"unused for more than {lim.max_age_s / 86400:g} days")
            extra = c.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] - lim.max_conversations
            if extra > 0:
                deleted += evict("id IN (SELECT id FROM conversations WHERE id != ? ORDER BY updated LIMIT ?)",
                                 (keep, extra), f"the server keeps at most {lim.max_conversations:,} conversations")
            while self._used_bytes() > lim.max_db_bytes:
                gone = evict("id IN (SELECT id FROM conversations WHERE id != ? ORDER BY updated LIMIT 1)", (keep,),
                             f"the server's database is capped at {lim.max_db_bytes / 2**20:g} MB")
                if not gone:
                    break
                deleted += gone
            if deleted:
                # remember as many evictions as conversations are kept; the oldest are forgotten
                c.execute("DELETE FROM evicted WHERE id IN (SELECT id FROM evicted ORDER BY at DESC LIMIT -1 OFFSET ?)",
                          (lim.max_conversations,))
                c.execute("PRAGMA incremental_vacuum")
        return deleted

    def close(self) -> None:
        with self._lock:
            self._conn.close()
