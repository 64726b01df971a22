"""nbgrader's settings for grading the lab (every `nbgrader` command run from this folder reads them).

The course folder is ``course/`` (git ignores it: it holds students' work and the gradebook; the
environment variable FMNIST_LAB_COURSE names another):

    course/source/<assignment>/<assignment>.ipynb       the instructor's edition (`make release` copies it)
    course/release/<assignment>/                        what students get (the same as notebooks/)
    course/downloaded/<assignment>/archive/             a folder of submissions (`make collect`)
    course/submitted/<student>/<assignment>/            collected submissions
    course/autograded/<student>/<assignment>/           executed and scored (`make autograde`)
    course/feedback/<student>/<assignment>/*.html       per-student feedback (`make feedback`)
    course/gradebook.db                                 the gradebook (SQLite), `make grades` exports it

One assignment per notebook, named like it (01_data_inspection). README "For instructors" walks
through the commands.
"""

import os

c = get_config()  # noqa: F821 (nbgrader defines get_config and __file__ when it reads this file)

# FMNIST_LAB_COURSE: another course folder, for Formgrader too (`make formgrader COURSE=path` sets it); the
# make targets also pass it on the command line, which wins over this file for nbgrader's commands
c.CourseDirectory.root = os.environ.get("FMNIST_LAB_COURSE") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "course"
)
c.CourseDirectory.course_id = "fmnist-lab"

# Each cell of a submission runs under this limit (seconds) when it is autograded: a cell that
# exceeds it (an infinite loop, say) is interrupted and recorded as an error, the rest of that
# notebook still runs, and so does the grading of every other submission. 300 s is meant for
# quick mode, as `make autograde` runs (notebook 01's slowest cell took 8 s on a busy 2-core
# machine); in full mode (QUICK=0) a training cell runs for minutes: raise it (TIMEOUT=...).
c.Execute.timeout = 300

# `make collect`: a folder of submissions, one folder (or zip file) per student, named by the
# student's id, holding the notebook under its released name, e.g.
#   submissions/alice/01_data_inspection.ipynb   or   submissions/alice.zip
# nbgrader unpacks them into downloaded/<assignment>/extracted/<student id>/ and matches this pattern
# against each file's path there: the student id is the first folder, and the notebook may sit in
# folders of its own (a zip of the assignment folder); hidden files and folders (.ipynb_checkpoints)
# and macOS's __MACOSX are skipped.
c.FileNameCollectorPlugin.named_regexp = (
    r".*/extracted/(?P<student_id>[^/.][^/]*)/(?:(?!__MACOSX/)[^/.][^/]*/)*(?P<file_id>[^/.][^/]*\.ipynb)$"
)
