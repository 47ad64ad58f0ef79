from setuptools import find_packages, setup

# torch is listed without an upper bound on purpose: the Makefile installs the pinned CPU
# build (torch==2.13.0) first, so pip sees the requirement satisfied and pulls nothing else.
RUNTIME = [
    "torch>=2.4",
    "transformers>=5.0,<6",
    "accelerate>=1.0",
    "datasets>=3.0",
    "safetensors>=0.4",
    "evaluate>=0.4.3",
    "huggingface_hub>=1.0",
    "pillow>=10",
    "tokenizers>=0.21",
    "numpy>=1.26",
    "numba>=0.60",  # the ConceptNet loader's byte-level loops (wheels everywhere: no compiler at install)
    "pyarrow>=15",
    "pyyaml>=6",
    "jinja2>=3.1",  # huggingface_hub.ModelCard.from_template
]
EXTRAS = {
    "train": ["tensorboard>=2.15", "matplotlib>=3.8", "tqdm>=4.66"],
    "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"],
    "dev": ["pytest>=8", "ruff>=0.6", "pandas>=2", "scikit-learn>=1.4", "psutil>=5"],  # psutil: stacks of hung runs
}
EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})
# Opt-in, outside "all": trackio 0.43 pins pillow<13 and brings a web stack the tests do not need.
EXTRAS["trackio"] = ["trackio>=0.43"]

setup(
    name="knowledge-clip",
    version="0.1.0",
    description="Knowledge-CLIP (Pan et al., NeurIPS 2022): continued CLIP pre-training on knowledge graphs, "
    "Hugging Face native.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"knowledge_clip": ["metrics/*/*.py", "model_cards/*.md", "data/demo_world/facts.json"]},
    install_requires=RUNTIME,
    extras_require=EXTRAS,
)
