# Quick start: `make run` (set up and run the main job on the SYNTHETIC demo), `make test`.
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# No telemetry prompt, no network calls from kedro-telemetry.
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
HER2ST_DIR ?= data/01_raw/her2st

.PHONY: install run test test-model-rebuild lint format viz viz-build her2st study study-gpu model-summary bench bench-features gpu-check lock clean-data mlflow-server postgres-local ui serve

$(STAMP): requirements.txt requirements-dev.txt requirements-lock.txt pyproject.toml tools/install.sh
	bash tools/install.sh $(VENV) $(PYTHON)
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/kedro run

test: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider -n 2 --dist loadfile

# MLflow rebuilds the registered model's environment from the package index (uv; torch included:
# minutes and gigabytes) and predicts in it from a clean folder; skipped by `make test`.
test-model-rebuild: $(STAMP)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	PATH="$(abspath $(BIN)):$$PATH" THITOGENE_TEST_MODEL_REBUILD=1 $(BIN)/pytest -p no:cacheprovider \
		"tests/pipelines/training/test_pipeline.py::test_the_registered_model_rebuilds_its_environment_and_predicts_from_a_clean_folder"

# The MLflow UI and the REST server on this project's store, without activating the venv (both
# start programs from PATH). MLFLOW_TRACKING_URI wins when set; else the project's mlflow.db.
STORE = $${MLFLOW_TRACKING_URI:-sqlite:///$(abspath mlflow.db)}
MODEL ?= models:/synthetic_thitogene@champion
PORT ?= 5001
UV_VERSION ?= 0.13.9

ui: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH MLFLOW_TRACKING_URI=$(STORE) $(BIN)/kedro mlflow ui

serve: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH MLFLOW_TRACKING_URI=$(STORE) $(BIN)/mlflow models serve -m "$(MODEL)" \
		--env-manager local -h 127.0.0.1 -p $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

viz: $(STAMP)
	$(BIN)/kedro viz run --no-browser --host 127.0.0.1 --port 4141

viz-build: $(STAMP)
	$(BIN)/kedro viz build

# Training step and inference of the paper configuration against the machine's matmul floor
# (a real her2st section when the environment sets HER2ST_DIR [and HER2ST_GENE_LIST], else a
# synthetic one); see docs/benchmarks.md.
bench: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/run.py --write docs/benchmarks.md

# The frozen-features section alone (extraction; the spatial head's epochs against THItoGene's from
# pixels), into its own block of docs/benchmarks.md.
bench-features: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/run.py --only features --block bench-features --write docs/benchmarks.md

# One fold of the paper model on a GPU (fp32, then bf16; sections kept on the device) and the
# projected 32-fold x 300-epoch protocol time, written into docs/benchmarks.md (needs HER2ST_DIR).
gpu-check: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/gpu_check.py --her2st-dir $(HER2ST_DIR) \
		$(if $(HER2ST_GENE_LIST),--gene-list $(HER2ST_GENE_LIST)) --write docs/benchmarks.md

# The study on the real HER2+ sections with images: THItoGene, its ablations, HisToGene, Hist2ST and
# bf16, over seeds, each fold an MLflow run; resumable; results into docs/results.md (CPU: small presets).
study: $(STAMP)
	HER2ST_DIR=$(HER2ST_DIR) $(if $(HER2ST_GENE_LIST),HER2ST_GENE_LIST=$(HER2ST_GENE_LIST)) \
		$(BIN)/kedro study run --env her2st --write docs/results.md

# The same study with the paper configuration, 300 epochs, 8 folds side by side on GPU 0.
study-gpu: $(STAMP)
	HER2ST_DIR=$(HER2ST_DIR) $(if $(HER2ST_GENE_LIST),HER2ST_GENE_LIST=$(HER2ST_GENE_LIST)) \
		$(BIN)/kedro study run --env her2st --devices 0 --parallel 8 --write docs/results.md \
		--params "training.model.preset=paper_her2st,training.optimiser.lr=1e-5,training.epochs=300,study.experiment=thitogene_study_paper"

# Parameters and forward FLOPs per component of the paper configurations (docs/models/).
model-summary: $(STAMP)
	$(BIN)/python -m thitogene_kedro.models.summary --spots 300

# The data pipelines on the real HER2+ sections (a clone of almaan/her2st at HER2ST_DIR).
her2st: $(STAMP)
	HER2ST_DIR=$(HER2ST_DIR) $(BIN)/kedro run --env her2st --pipelines preprocessing,patching,graph_building

lock: $(STAMP)
	{ sed -n '1,3p' requirements-lock.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^thitogene' | sed 's/+cpu$$//'; } > requirements-lock.txt.new
	mv requirements-lock.txt.new requirements-lock.txt

clean-data:
	find data -mindepth 2 -type f ! -name .gitkeep -delete

# The lab's MLflow tracking server (PostgreSQL backend store, proxied artifacts, 127.0.0.1 by
# default): `make postgres-local` starts a PostgreSQL in .postgres/ and prints the store URI;
# `MLFLOW_BACKEND_STORE_URI=<uri> make mlflow-server`. See README "Running the full protocol on a cluster".
postgres-local:
	deploy/mlflow/local_postgres.sh start .postgres

mlflow-server: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH deploy/mlflow/server.sh
