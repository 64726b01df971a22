# Everything runs from the project's own virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data browser run test notebooks notebook-outputs student clean

## setup: create .venv and install the lab with its dev tools
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

## data: install Debian's dataset package where apt is available, then stage and verify the files
data: setup
	@if [ ! -f $(DEBIAN_DATA) ] && [ -z "$$FMNIST_DATA_DIR" ] && [ ! -d data/FashionMNIST/raw ] && command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist \
		|| echo "apt-get could not install dataset-fashion-mnist; torchvision will try to download the data"; \
	fi
	$(BIN)/fmnist-lab data

## run: the main job: a short training run of the fast recipe, printing the test accuracy
run: data
	$(BIN)/fmnist-lab train --recipe fast --out runs/quickstart

## browser: install Debian's Chromium for the browser tests where apt is available
browser:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y chromium \
		|| echo "apt-get could not install chromium; the browser tests will be skipped (outside CI)"; \
	fi

## test: unit, real-data and browser tests, then every notebook through nbval in quick mode
test: data browser
	FMNIST_LAB_QUICK=1 $(BIN)/python -m pytest

## notebooks: instructors: execute all notebooks in full mode into build/notebooks (ipynb + html)
notebooks: data
	mkdir -p build/notebooks
	$(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
		--output-dir build/notebooks instructor/*.ipynb
	$(BIN)/jupyter nbconvert --to html --output-dir build/notebooks build/instructor/*.ipynb

## notebook-outputs: maintainers: refresh the stored outputs of the checked cells (quick mode), strip the rest
notebook-outputs: data
	FMNIST_LAB_QUICK=1 $(BIN)/jupyter nbconvert --to notebook --execute --inplace instructor/*.ipynb
	$(BIN)/python tools/clean_notebooks.py instructor/*.ipynb

## student: instructors: the student edition in build/student (solutions replaced by stubs, outputs cleared)
student: setup
	$(BIN)/python tools/make_student_edition.py --out build/student

clean:
	rm -rf build runs notebooks/runs instructor/runs
