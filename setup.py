"""Maps the top-level folders the project asked for into one `kever` namespace.

kever <- kever/, kever.agent <- agent/, kever.tools <- tools/, kever.prompts <- prompts/,
kever.knowledge <- knowledge/, kever.evals <- evals/,
kever.serve <- serve/, kever.search <- search/. Subpackages are found automatically.
"""

from setuptools import find_packages, setup

ROOTS = {
    "kever": "kever",
    "kever.agent": "agent",
    "kever.tools": "tools",
    "kever.prompts": "prompts",
    "kever.knowledge": "knowledge",
    "kever.evals": "evals",
    "kever.serve": "serve",
    "kever.search": "search",
}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=dict(ROOTS))
