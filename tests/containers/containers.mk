# `make test-containers` (tests/containers/README.md): the image, the compose stack with three
# smtpd replicas behind HAProxy and the checks of tests/containers/run.py, on podman. Root
# only (rootful podman, debootstrap); installs the engine itself when missing. Bounded: the
# driver gives up after 19 minutes and removes everything it made, on failure too.
.PHONY: test-containers
test-containers:
	$(PYTHON) tests/containers/run.py
