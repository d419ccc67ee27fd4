"""kever's curated affective knowledge: taxonomies, mappings and visual-cue associations
as YAML data files, validated on load (see :mod:`kever.knowledge.schema`).

``KEVER_KNOWLEDGE_DIR`` points the loader at another folder with the same layout.
"""

from kever.knowledge.loader import Knowledge, knowledge_dir, load_knowledge

__all__ = ["Knowledge", "knowledge_dir", "load_knowledge"]
