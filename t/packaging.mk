# Packaging checks, run by `make check`:
#   t/check_exports.sh  the shared library exports only tide_ symbols,
#                       exactly the functions the headers declare
#                       TIDE_EXTERN, and the static one defines no global
#                       outside tide_;
#   t/check_headers.sh  each public header compiles on its own as C11 and
#                       as C++ with -Wall -Wextra -pedantic -Werror;
#   t/check_doc.sh      Doxygen finds every public symbol documented (as
#                       `make doc` requires; skipped without doxygen);
#   t/check_layers.sh   each layer of src/ includes only itself and the
#                       layers before it, and core names no other layer;
#   t/check_linking.sh  libtide.so's DT_NEEDED is the documented set, and
#                       beside an application's libevent-2.1 every
#                       libevent name binds to one library
#                       (t/linking/mixed.c).
# Not part of `make check`, because the tree is not formatted yet and a
# clang-format of another version may disagree: t/check_format.sh, the C
# sources and headers against .clang-format (.ci/run runs it).
# Not part of `make check`, because it installs: t/consumer/run.sh BUILDDIR
# installs into a temporary directory and builds t/consumer/consumer.c
# against it through pkg-config only (shared and --static).
TESTS += t/check_exports.sh t/check_headers.sh t/check_doc.sh t/check_layers.sh \
	t/check_linking.sh
EXTRA_DIST += t/check_exports.sh t/check_headers.sh t/check_doc.sh t/check_layers.sh t/headers/use.c \
	t/check_linking.sh t/linking/mixed.c \
	t/consumer/run.sh t/consumer/consumer.c t/check_dist.sh t/check_format.sh

# make installcheck (and so make distcheck) runs the consumer test on the
# installation it checks.
installcheck-local:
	$(SHELL) $(srcdir)/t/consumer/run.sh --installed "$(DESTDIR)$(pkgconfigdir)"

# make distcheck also fails if a file git tracks is missing from the
# tarball (t/check_dist.sh).
distcheck-hook:
	$(SHELL) $(srcdir)/t/check_dist.sh $(srcdir) $(distdir)
