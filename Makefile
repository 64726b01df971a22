# Everything runs from the project's own virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: help setup data browser run test notebooks notebook-outputs student release collect autograde formgrader grades feedback clean

## help: these targets, each with what it does
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## setup: create .venv, install the lab with its dev tools and build its fused training kernel (about 30 s, once)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -c 'from fmnist_lab.fused import kernel; print("fused kernel:", "built" if kernel() else "not built (the warning says why)")'
	touch $@

## data: install Debian's dataset package where apt is available, then stage and verify the files
data: setup
	@if [ ! -f $(DEBIAN_DATA) ] && [ -z "$$FMNIST_DATA_DIR" ] && [ ! -d data/FashionMNIST/raw ] && command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist \
		|| echo "apt-get could not install dataset-fashion-mnist; torchvision will try to download the data"; \
	fi
	$(BIN)/fmnist-lab data

## run: the main job: a short training run of the fast recipe into runs/quickstart (replacing the last one), printing the test accuracy
run: data
	$(BIN)/fmnist-lab train --recipe fast --out runs/quickstart --overwrite

## browser: install Debian's Chromium for the browser tests where apt is available
browser:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y chromium \
		|| echo "apt-get could not install chromium; the browser tests will be skipped (outside CI)"; \
	fi

## test: the style (ruff lint and format check), unit, real-data and browser tests, every notebook through nbval (quick mode; the student edition's 05-07 in the browser)
test: data browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	FMNIST_LAB_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --no-loadscope-reorder

## notebooks: instructors: execute the instructor's edition in full mode into build/notebooks (ipynb + html)
notebooks: data
	mkdir -p build/notebooks
	$(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
		--output-dir build/notebooks instructor/*.ipynb
	$(BIN)/jupyter nbconvert --to html --output-dir build/notebooks build/notebooks/*.ipynb

## notebook-outputs: maintainers: refresh the stored outputs of the checked cells (quick mode), strip the rest
notebook-outputs: data
	FMNIST_LAB_QUICK=1 $(BIN)/jupyter nbconvert --to notebook --execute --inplace instructor/*.ipynb
	$(BIN)/python tools/clean_notebooks.py instructor/*.ipynb

## student: maintainers: grading metadata of instructor/ derived, then the student edition rebuilt into notebooks/ (commit both)
student: setup
	$(BIN)/python tools/grading_metadata.py
	$(BIN)/python tools/make_student_edition.py --out notebooks

# Grading a class with nbgrader (README "For instructors"). The course folder (default course/,
# ignored by git) holds the gradebook and the students' work; nbgrader_config.py holds the settings.
COURSE ?= course
INSTRUCTOR ?= instructor
ASSIGNMENT ?=
# a notebook's file name names its assignment too
override ASSIGNMENT := $(patsubst %.ipynb,%,$(ASSIGNMENT))
ASSIGNMENTS ?= $(or $(ASSIGNMENT),$(basename $(notdir $(wildcard $(INSTRUCTOR)/*.ipynb))))
override ASSIGNMENTS := $(patsubst %.ipynb,%,$(ASSIGNMENTS))
STUDENT ?=
ONLY_NEW ?=
LAB_ARGS ?=
SUBMISSIONS ?= submissions
QUICK ?= 1
TIMEOUT ?=
# nbgrader runs alembic (its database migrations) from PATH
NBGRADER = PATH="$(abspath $(BIN)):$$PATH" $(BIN)/nbgrader
COURSE_FLAG = --CourseDirectory.root="$(abspath $(COURSE))"
NEED_NBGRADER = @test -x "$(BIN)/nbgrader" || { echo "no nbgrader in $(BIN)/: run make setup, or pass BIN=<the folder of your nbgrader>"; exit 1; }
# collect, autograde and feedback work on one released assignment, named by ASSIGNMENT
NEED_ASSIGNMENT = @test -n "$(ASSIGNMENT)" || { echo "make $@ needs ASSIGNMENT=<name>, e.g. make $@ ASSIGNMENT=01_data_inspection (the notebook's name without .ipynb)"; exit 1; }; \
	test -d "$(COURSE)/release/$(ASSIGNMENT)" || { echo "ASSIGNMENT=$(ASSIGNMENT) was not released into $(COURSE)/: check the name, or run make release ASSIGNMENT=$(ASSIGNMENT) first"; exit 1; }
# $(call NEED_STEP,folder,what it holds,the make command that fills it): a step that needs an earlier one's output
NEED_STEP = @ls -d "$(COURSE)"/$(1)/*/"$(ASSIGNMENT)" >/dev/null 2>&1 || { echo "no $(2) of $(ASSIGNMENT) in $(COURSE)/$(1)/: run make $(3) first"; exit 1; }

## release: instructors: the notebooks of INSTRUCTOR/ (ASSIGNMENT=one, ASSIGNMENTS="several", default all) released into COURSE/release/, recorded in the gradebook
release:
	$(NEED_NBGRADER)
	@for name in $(ASSIGNMENTS); do \
		test -f "$(INSTRUCTOR)/$$name.ipynb" || { echo "no $(INSTRUCTOR)/$$name.ipynb: ASSIGNMENT(S) names notebooks of $(INSTRUCTOR)/, without .ipynb: $(basename $(notdir $(wildcard $(INSTRUCTOR)/*.ipynb)))"; exit 1; }; \
		mkdir -p "$(COURSE)/source/$$name" && cp "$(INSTRUCTOR)/$$name.ipynb" "$(COURSE)/source/$$name/"; \
	done
	@for name in $(ASSIGNMENTS); do \
		echo "nbgrader generate_assignment $$name --force"; \
		$(NBGRADER) generate_assignment "$$name" --force $(COURSE_FLAG) || exit 1; \
	done

## collect: instructors: a folder of submissions (SUBMISSIONS=dir, one folder or zip per student id) into COURSE/submitted/
collect:
	$(NEED_NBGRADER)
	$(NEED_ASSIGNMENT)
	@test -d "$(SUBMISSIONS)" || { echo "SUBMISSIONS=$(SUBMISSIONS) is not a folder: give the folder of submissions, one folder or zip file per student id"; exit 1; }
	@$(PYTHON) tools/submission_names.py --twice "$(SUBMISSIONS)"
	rm -rf "$(COURSE)/downloaded/$(ASSIGNMENT)"  # what an earlier collect copied: nbgrader would read it again
	mkdir -p "$(COURSE)/downloaded/$(ASSIGNMENT)/archive"
	cp -R "$(SUBMISSIONS)/." "$(COURSE)/downloaded/$(ASSIGNMENT)/archive/"
	$(NBGRADER) zip_collect $(ASSIGNMENT) --force $(COURSE_FLAG) \
		|| { $(PYTHON) tools/submission_names.py --same-names "$(COURSE)" "$(ASSIGNMENT)"; exit 1; }
	@$(BIN)/python tools/restore_checks.py "$(COURSE)" "$(ASSIGNMENT)"  # nbgrader's Python: it has nbformat and the lab
	@$(PYTHON) tools/submission_names.py "$(COURSE)" "$(ASSIGNMENT)"

## autograde: instructors: run and score the collected submissions of ASSIGNMENT (or of STUDENT only; ONLY_NEW=1: those not autograded yet; quick mode unless QUICK=0; TIMEOUT=s per cell)
autograde:
	$(NEED_NBGRADER)
	$(NEED_ASSIGNMENT)
	$(call NEED_STEP,submitted,submission,collect ASSIGNMENT=$(ASSIGNMENT) SUBMISSIONS=<folder>)
	@test -z "$(STUDENT)" || test -d "$(COURSE)/submitted/$(STUDENT)/$(ASSIGNMENT)" || { \
		echo "STUDENT=$(STUDENT) has no collected submission of $(ASSIGNMENT); those collected: $$(cd "$(COURSE)/submitted" && for d in */$(ASSIGNMENT); do printf '%s, ' "$${d%%/*}"; done | sed 's/, $$//')"; exit 1; }
	FMNIST_LAB_QUICK=$(QUICK) $(NBGRADER) autograde $(ASSIGNMENT) $(if $(ONLY_NEW),,--force) $(COURSE_FLAG) \
		$(if $(STUDENT),--student="$(STUDENT)") $(if $(TIMEOUT),--Execute.timeout=$(TIMEOUT))

# Jupyter refuses to start as root (where SUDO is empty) without --allow-root
## formgrader: instructors: JupyterLab with nbgrader's Formgrader on COURSE, to grade predictions and written answers by hand (LAB_ARGS="--no-browser --port 8890" passes options on)
formgrader:
	@test -f "$(COURSE)/gradebook.db" || { echo "no gradebook in $(COURSE)/: run make release first (with the same COURSE=)"; exit 1; }
	FMNIST_LAB_COURSE="$(abspath $(COURSE))" FMNIST_LAB_QUICK=$(QUICK) $(BIN)/jupyter lab $(if $(SUDO),,--allow-root) $(LAB_ARGS)

## grades: instructors: every student's score per assignment, from the gradebook, as COURSE/grades.csv; per question as COURSE/grades_by_question.csv
grades:
	$(NEED_NBGRADER)
	@$(BIN)/python tools/hand_grading.py "$(COURSE)"  # nbgrader's Python: it has nbformat
	@$(BIN)/python tools/second_look.py "$(COURSE)"  # the Python that has the lab (its grading code)
	$(NBGRADER) export --to "$(abspath $(COURSE))/grades.csv" $(COURSE_FLAG)
	@$(BIN)/python tools/question_scores.py "$(COURSE)"  # the Python that has the lab (its atomic write)

## feedback: instructors: one HTML feedback file per autograded submission of ASSIGNMENT, in COURSE/feedback/
feedback:
	$(NEED_NBGRADER)
	$(NEED_ASSIGNMENT)
	$(call NEED_STEP,autograded,autograded submission,autograde ASSIGNMENT=$(ASSIGNMENT))
	@$(BIN)/python tools/hand_grading.py "$(COURSE)" "$(ASSIGNMENT)"
	@$(BIN)/python tools/second_look.py "$(COURSE)" "$(ASSIGNMENT)"
	$(NBGRADER) generate_feedback $(ASSIGNMENT) --force $(COURSE_FLAG)
	@$(BIN)/python tools/strip_grading_codes.py "$(COURSE)" "$(ASSIGNMENT)"  # the Python that has the lab

## clean: remove build/ (the executed notebooks); trained runs under runs/ are yours, kept: delete those by hand
clean:
	rm -rf build
