# Sourced by run_tests.sh and run_demo.sh: create ./.venv on first use and install the project's
# requirements into it (a CPU build of torch where no torch is installed yet). Offline apart from
# the package index. Sets PYTHON to the environment's interpreter.
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
# torch first and pinned: an unpinned `torch` would pull the newest CUDA build (several GB).
# A GPU user installs the CUDA torch of their choice into .venv first; it is kept.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -r requirements.txt ${EXTRA_REQUIREMENTS:-} -c constraints.txt
# The project itself, editable, so that `import mechprobe` works from any folder (bench/,
# experiments/, a notebook); its requirements are the ones just installed.
.venv/bin/pip show -q mechprobe 2>/dev/null || .venv/bin/pip install -q -e . --no-deps
PYTHON=.venv/bin/python
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
