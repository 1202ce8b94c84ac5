# doc/doxyfilter.awk: Doxygen's INPUT_FILTER for tide's public headers.
#
# The headers keep plain C comments (STYLE.md: a comment right above each
# declaration). This filter shows Doxygen what a reader sees, without
# changing a line number (so warnings point at the real header lines):
#
#   - the first comment of a file documents the file (@file);
#   - a banner comment (a line of dashes, a title, text, dashes) opens a
#     named member group that lasts until the next banner;
#   - a comment followed directly by code (no blank line) documents that
#     code; a leading "tide_name: " is dropped, since Doxygen prints the
#     name anyway;
#   - a comment after code on the same line documents that member (/**<);
#     one that starts with "private" also starts a private section, so the
#     rest of the struct is left out of the reference as it is out of the
#     API;
#   - a comment "private" on its own line inside a struct starts a private
#     section too;
#   - a function left without a comment of its own borrows one (@copydoc):
#     from the struct documented just above it when the function is named
#     after that struct (the operation-future pattern: the comment above
#     `typedef struct tide_read {...} tide_read_t;` documents tide_read()),
#     or from the declaration right above it with no blank line between
#     (a comment above a run of declarations covers the run);
#   - an operation struct's uncommented `tide_future_t fut;` header member
#     is described once here;
#   - `#word` in a comment is escaped, so it is not taken for a link;
#   - any other comment stays a plain comment.
#
# Usage (what Doxygen runs): awk -f doxyfilter.awk header.h
#
# Why a filter and not Doxygen's own markers (issue 13, weighed in 2026):
# the eleven public headers hold about 525 comments that document code,
# 259 member comments, 41 banners, 89 private sections and 39 functions
# that borrow their struct's comment. Markers would mean /** on each, /**<
# on each member comment, @name/@{/@} around each banner, @privatesection
# in each struct, an explicit @copydoc per borrowing function and "tide_x:"
# prefixes removed by hand (187): every comment of every header touched
# once, and a rule set every later contributor must keep, where the filter
# asks only for a plain comment right above the declaration (STYLE.md)
# and t/check_doc.sh fails on anything it leaves undocumented.

BEGIN {
    held = ""; have_held = 0      # output lags one line: see close_group
    in_com = 0; ncom = 0; pending = 0
    in_pass = 0                   # inside a comment copied unchanged
    seen_code = 0; file_done = 0
    group_open = 0
    last_doc_nr = -10             # line number of the last doc comment's end
    owed_tag = ""; owed_type = ""; owed_name = ""
    in_decl = 0; decl_name = ""; decl_start_held = 0
    run_name = ""; run_end_nr = -10
    struct_doc_pending = 0
}

function emit(s) {
    if (have_held)
        print held
    held = s
    have_held = 1
}

# Close the open member group on the line already emitted (blank or code).
function close_group() {
    if (!group_open)
        return
    if (held ~ /^[ \t]*$/)
        held = "/** @} */"
    else
        held = held " /** @} */"
    group_open = 0
    last_doc_nr = -10             # line number of the last doc comment's end
    owed_tag = ""; owed_type = ""; owed_name = ""
    in_decl = 0; decl_name = ""; decl_start_held = 0
    run_name = ""; run_end_nr = -10
    struct_doc_pending = 0
}

function esc(s) {
    return gensub_hash(s)
}

# "#if" in a comment would be read as a link request: escape the "#".
function gensub_hash(s,    out) {
    out = ""
    while (match(s, /[^\\]#[A-Za-z]/)) {
        out = out substr(s, 1, RSTART) "\\#"
        s = substr(s, RSTART + 2)
    }
    return out s
}

function emit_comment(    i) {
    for (i = 0; i < ncom; i++)
        emit(esc(com[i]))
    ncom = 0
}

# Drop "tide_name: " (or "TIDE_NAME: ") at the start of a comment's text.
function strip_name(s) {
    if (match(s, /^(\/\*\*|[ \t]*\*)[ \t]+(tide|TIDE)_[A-Za-z0-9_]+:[ \t]+/)) {
        lead = substr(s, 1, RLENGTH)
        sub(/[ \t]+(tide|TIDE)_[A-Za-z0-9_]+:[ \t]+$/, " ", lead)
        return lead substr(s, RLENGTH + 1)
    }
    return s
}

# The buffered comment com[0..ncom) is complete; `next_line` follows it.
function decide(next_line,    title, rest, n, fname) {
    if (!file_done && !seen_code) {
        file_done = 1
        fname = base
        sub(/.*\//, "", fname)
        sub(/^[ \t]*\/\*/, "/** @file " fname " ", com[0])
        emit_comment()
        return
    }
    if (com[0] ~ /^\/\* *-----/ && ncom >= 3) {
        # Banner: "/* ----", " * Title[. more]", ..., " * ---- */"
        title = com[1]
        sub(/^[ \t]*\*[ \t]*/, "", title)
        rest = ""
        if (match(title, /\.[ \t]+/)) {
            rest = substr(title, RSTART + RLENGTH)
            title = substr(title, 1, RSTART - 1)
        }
        sub(/\.[ \t]*$/, "", title)
        com[0] = (group_open ? "/** @} */ " : "") "/** @name " title
        com[1] = rest == "" ? " *" : " * " rest
        n = ncom - 1
        if (com[n] ~ /^[ \t]*\*[ \t]*-+[ \t]*\*\/[ \t]*$/)
            com[n] = " */ /** @{ */"
        else
            com[n] = com[n] " /** @{ */"
        group_open = 1
        owed_tag = ""; owed_type = ""; owed_name = ""; run_name = ""
        emit_comment()
        return
    }
    if (next_line ~ /^[ \t]*$/ || next_line ~ /^[ \t]*\/\*/) {
        emit_comment()
        return
    }
    if (com[0] ~ /^[ \t]+\/\*[ \t]*private/) {
        match(com[0], /^[ \t]*/)
        com[0] = substr(com[0], 1, RLENGTH) "/** @privatesection */ " \
            substr(com[0], RLENGTH + 1)
        emit_comment()
        return
    }
    # A doc comment: remember where it ends (the declaration that follows
    # is documented) and what it names (for the @copydoc rule).
    last_doc_nr = NR - 1
    owed_tag = ""; owed_type = ""; owed_name = ""
    if (match(com[0] " " com[1], /(tide|TIDE)_[A-Za-z0-9_]+:/))
        owed_name = substr(com[0] " " com[1], RSTART, RLENGTH - 1)
    struct_doc_pending = 1
    sub(/\/\*/, "/**", com[0])
    if (com[0] ~ /^[ \t]*\/\*\*[ \t]*$/ && ncom > 1)
        com[1] = strip_name(com[1])
    else
        com[0] = strip_name(com[0])
    emit_comment()
}

function process(line,    p, code, rest, ind) {
    # Already a Doxygen comment: copy it.
    if (line ~ /^[ \t]*(\/\*\*|\/\*!|\/\/\/)/) {
        p = index(line, "/*")
        if (p > 0 && index(substr(line, p + 3), "*/") == 0)
            in_pass = 1
        emit(esc(line))
        return
    }
    # A comment that starts the line: buffer it until we see what follows.
    if (line ~ /^[ \t]*\/\*/) {
        ncom = 0
        com[ncom++] = line
        p = index(line, "/*")
        if (index(substr(line, p + 2), "*/") > 0)
            pending = 1
        else
            in_com = 1
        return
    }
    if (line !~ /^[ \t]*$/)
        seen_code = 1
    line = declaration(line)
    # A comment after code on the same line.
    p = index(line, "/*")
    if (p > 1) {
        code = substr(line, 1, p - 1)
        rest = substr(line, p + 2)
        if (rest ~ /^[*!]/) {
            if (index(substr(rest, 2), "*/") == 0)
                in_pass = 1
            emit(line)
            return
        }
        if (rest ~ /^[ \t]*private/) {
            match(code, /^[ \t]*/)
            ind = substr(code, 1, RLENGTH)
            code = ind "/** @privatesection */ " substr(code, RLENGTH + 1)
        }
        line = code "/**<" rest
        if (index(rest, "*/") == 0)
            in_pass = 1
    } else if (line ~ /^[ \t]+tide_future_t[ \t]+fut;[ \t]*$/) {
        line = line " /**< the future's header: what the init function" \
            " returns, to await */"
    }
    emit(line)
}

# What a function declaration borrows when it has no comment of its own.
function borrowed(name,    documented) {
    documented = (decl_start_nr == last_doc_nr + 1)
    if (documented)
        return ""
    if (owed_type != "" && (name == owed_tag || name == owed_name))
        return "/** @copydoc " owed_type " */ "
    if (run_name != "" && decl_start_nr == run_end_nr + 1)
        return "/** @copydoc " run_name " */ "
    return "@undocumented"
}

function decl_named(name, on_held,    pre) {
    decl_name = name
    pre = borrowed(name)
    if (pre == "@undocumented") {
        run_name = ""
        return ""
    }
    run_name = pre == "" ? name : run_name
    if (pre ~ /copydoc tide_[A-Za-z0-9_]+_t /)
        run_name = name
    owed_tag = ""; owed_type = ""; owed_name = ""
    return pre
}

# Track structs (for owed docs) and function declarations (for borrowed
# docs); returns the line, possibly with a @copydoc in front.
function declaration(line,    pre, ind) {
    if (struct_doc_pending && line ~ /^typedef[ \t]+struct[ \t]+tide_[A-Za-z0-9_]+[ \t]*\{/) {
        match(line, /tide_[A-Za-z0-9_]+/)
        owed_tag = substr(line, RSTART, RLENGTH)
    }
    struct_doc_pending = 0
    if (owed_tag != "" && owed_type == "" && line ~ /^\}[ \t]*tide_[A-Za-z0-9_]+_t;/) {
        match(line, /tide_[A-Za-z0-9_]+_t/)
        owed_type = substr(line, RSTART, RLENGTH)
    }
    if (want_name) {
        want_name = 0
        if (match(line, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
            pre = decl_named(substr(line, RSTART, RLENGTH - 1), 1)
            if (pre != "")
                held = pre held
        }
    }
    if (line ~ /^(TIDE_EXTERN|static[ \t]+inline)[ \t]/) {
        decl_start_nr = NR
        in_decl = 1
        if (match(line, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
            pre = decl_named(substr(line, RSTART, RLENGTH - 1), 0)
            sub(/[ \t]+$/, "", pre)
            if (pre != "")
                line = pre " " line
        } else {
            want_name = 1
        }
    }
    if (in_decl && (line ~ /\);[ \t]*(\/\*.*)?$/ || line ~ /^\}/)) {
        in_decl = 0
        run_end_nr = NR
    }
    return line
}

{
    line = $0
    if (FNR == 1)
        base = FILENAME
    if (in_com) {
        com[ncom++] = line
        if (index(line, "*/") > 0) {
            in_com = 0
            pending = 1
        }
        next
    }
    if (in_pass) {
        emit(esc(line))
        if (index(line, "*/") > 0)
            in_pass = 0
        next
    }
    if (pending) {
        pending = 0
        decide(line)
    }
    process(line)
}

END {
    if (in_com)
        emit_comment()
    else if (pending)
        decide("")
    close_group()
    if (have_held)
        print held
}
