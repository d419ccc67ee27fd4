"""The affective knowledge base: curated cues + SenticNet 6 + NRC EmoLex (+ imported
lexicons), a versioned hybrid (FTS5 + embedding) index, and agent tools over it.

    from kever.tools.kb import KnowledgeBase
    kb = KnowledgeBase.open()          # builds the index on first use
    kb.search("dark stormy sky", k=10)
"""

from kever.tools.kb.knowledge_base import KnowledgeBase
from kever.tools.kb.models import EmotionDefinition, EmotionProfile, Hit, Taxonomy

__all__ = ["KnowledgeBase", "Hit", "EmotionProfile", "EmotionDefinition", "Taxonomy"]
