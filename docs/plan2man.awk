# plan2man.awk: the reference sections of docs/plan.md as migrate-plan(5), in roff.
#
#   LC_ALL=C awk -v version=0.1.0 -v date=2024-06-01 -f docs/plan2man.awk docs/plan.md
#
# `make` runs it (the Makefile's install block). It knows the Markdown that
# docs/plan.md is written in, and only that: headings, paragraphs, "- " lists
# (with fenced code inside an item), fenced code, tables, `code`, *emphasis*,
# **strong** and [links](target). Anything else in a section it converts fails
# the build with file:line: why, on stderr, instead of being dropped in silence;
# so does a key table whose row lacks a `key`, has a cell too many or too few,
# or names a key outside its section. Plain POSIX awk (mawk, gawk, busybox).

BEGIN {
	# The ## sections of docs/plan.md that make the page, each required, in the file's order.
	nwant = split("A complete example|Sections and the commands that need them|Value types|" \
	              "Secrets|References: `${...}`|Key reference|Rules across sections|" \
	              "Files the plan names: errors, warnings, unchecked", want, "|")
	for (i = 1; i <= nwant; i++)
		wanted[want[i]] = 1
	keyhead = "Key|Type|Required|Default|Allowed|Example"
	state = "title"  # title, intro, skip, in
	mode = ""        # in a section: "", para, list, table, tablehead, code, listcode
	fenced = 0       # in a ``` block of a section that is skipped
	failed = 0
	nkeys = 0
}

function fail(why) {
	printf "%s:%d: %s\n", FILENAME, FNR, why > "/dev/stderr"
	failed = 1
	exit 1
}

# Groff's glyphs for the few non-ASCII characters the file uses; any other fails.
function glyphs(s) {
	gsub(/—/, "\\(em", s)
	gsub(/−/, "\\-", s)
	gsub(/×/, "\\(mu", s)
	gsub(/→/, "\\(->", s)
	gsub(/…/, "...", s)
	if (s ~ /[\200-\377]/)
		fail("a character with no roff glyph in plan2man.awk: " s)
	return s
}

# One line of text, never taken for a request.
function emit(s) {
	s = glyphs(s)
	if (s ~ /^[.']/)
		s = "\\&" s
	print s
}

# A heading request (.SH, .SS) with its text in quotes.
function request(req, text) {
	gsub(/"/, "\\(dq", text)
	print req " \"" glyphs(text) "\""
}

# Literal text: backslashes and dashes escaped.
function lit(s,    out, i, c) {
	out = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "\\")
			out = out "\\e"
		else if (c == "-")
			out = out "\\-"
		else
			out = out c
	}
	return out
}

# Markdown inline markup to roff.
function inl(s,    out, i, c, rest, j, k, ital, bold, text) {
	out = ""
	ital = bold = 0
	i = 1
	while (i <= length(s)) {
		c = substr(s, i, 1)
		rest = substr(s, i)
		if (c == "\\" && substr(s, i + 1, 1) ~ /[][\\`*_{}()#+.!|<>-]/) {
			out = out lit(substr(s, i + 1, 1))
			i += 2
		} else if (c == "`") {
			j = index(substr(s, i + 1), "`")
			if (!j)
				fail("a ` with no closing one")
			out = out "\\fB" lit(substr(s, i + 1, j - 1)) "\\fR"
			i += j + 1
		} else if (substr(rest, 1, 2) == "**") {
			out = out (bold ? "\\fR" : "\\fB")
			bold = !bold
			i += 2
		} else if (c == "*") {
			out = out (ital ? "\\fR" : "\\fI")
			ital = !ital
			i++
		} else if (c == "[" && match(rest, /^\[[^]]*\]\([^)]*\)/)) {
			j = index(rest, "](")
			text = substr(rest, 2, j - 2)
			out = out inl(text)
			i += RLENGTH
		} else if (c == "<" && rest ~ /^<\/?[A-Za-z][A-Za-z0-9]*( [^>]*)?\/?>/) {
			fail("HTML in Markdown: " rest)
		} else {
			out = out lit(c)
			i++
		}
	}
	if (ital || bold)
		fail("an * or ** with no closing one")
	return out
}

function trim(s) {
	sub(/^[ \t]+/, "", s)
	sub(/[ \t]+$/, "", s)
	return s
}

# A table row into cells[1..n]; n.
function cells_of(line, cells,    n, i) {
	line = trim(line)
	if (line !~ /^\|.*\|$/)
		fail("a table row must start and end with |")
	line = substr(line, 2, length(line) - 2)
	gsub(/\\\|/, "\001", line)
	n = split(line, cells, "|")
	for (i = 1; i <= n; i++) {
		cells[i] = trim(cells[i])
		gsub(/\001/, "\\|", cells[i])
	}
	return n
}

function flush(    t) {
	if (mode == "para") {
		print ".PP"
		emit(inl(para))
	} else if (mode == "list" && item != "") {
		print (itemstarted ? ".IP" : ".IP \\(bu 2")
		emit(inl(item))
		itemstarted = 1
	}
	if (mode == "list" && item == "" && !itemstarted)
		fail("an empty list item")
	para = item = ""
	mode = ""
}

function start_item(text) {
	flush()
	mode = "list"
	item = text
	itemstarted = 0
}

function table_row(line,    n, c, i, key, first, prefix) {
	n = cells_of(line, c)
	if (n != ncols)
		fail(sprintf("a row of %d cells in a table of %d columns", n, ncols))
	print ".TP"
	if (keytable) {
		if (c[1] !~ /^`[^`]+`$/)
			fail("a key table row without a `key` in its first column")
		key = substr(c[1], 2, length(c[1]) - 2)
		# under "### vms" or "#### traffic.haproxy", only keys of that section
		if (heading ~ /^[a-z_]+(\.[a-z_]+)*$/ && key != heading &&
		    index(key, heading ".") != 1 && index(key, heading "[") != 1)
			fail("key " key " in the table of " heading)
		emit("\\fB" lit(key) "\\fR" (c[2] != "" ? " (" inl(c[2]) ")" : ""))
		nkeys++
	} else {
		emit(inl(c[1]))
	}
	print ".br"  # the cells under the first, even when it is shorter than the indent
	first = 1
	for (i = (keytable ? 3 : 2); i <= n; i++) {
		if (c[i] == "")
			continue
		if (!first)
			print ".br"
		emit(inl(head[i]) ": " inl(c[i]))
		first = 0
	}
}

function section_end() {
	if (mode == "code" || mode == "listcode")
		fail("a ``` block with no end")
	flush()
}

state == "title" {
	if ($0 ~ /^# /) {
		state = "intro"
		intro = ""
		next
	}
	if ($0 != "")
		fail("docs/plan.md must start with its # title")
	next
}

state == "intro" {
	if ($0 == "" && intro != "") {
		print ".\\\" migrate-plan(5), written by docs/plan2man.awk from docs/plan.md: change that,"
		print ".\\\" not this file."
		printf ".TH MIGRATE\\-PLAN 5 \"%s\" \"migrate %s\" \"File Formats\"\n", date, version
		print ".\\\" key and file names are not to be hyphenated, lines not justified"
		print ".nr HY 0"
		print ".nh"
		print ".ad l"
		print ".SH NAME"
		print "migrate\\-plan \\- the migration plan of migrate(1), one YAML file"
		print ".SH SYNOPSIS"
		print "\\fBmigrate.yaml\\fR, or the file named by \\fBmigrate \\-p\\fR \\fIFILE\\fR"
		print ".SH DESCRIPTION"
		emit(inl(intro))
		print ".PP"
		print "This page is the reference part of \\fBdocs/plan.md\\fR in migrate's source, from"
		print "which it is made: how traffic steps become server weights, what migrate does at"
		print "each load balancer, the PromQL of the RED gates and the diagnostics are there."
		state = "skip"
	} else if ($0 != "") {
		intro = intro (intro == "" ? "" : " ") $0
	}
	next
}

# In a section, inside a fenced block: lines as they are.

mode == "code" {
	if ($0 ~ /^```[ \t]*$/) {
		print ".EE"
		print ".RE"
		mode = ""
	} else {
		emit(lit($0))
	}
	next
}

mode == "listcode" {
	if ($0 ~ /^  ```[ \t]*$/) {
		print ".EE"
		mode = "list"
	} else if ($0 != "" && substr($0, 1, 2) != "  ") {
		fail("a line of a ``` block in a list item must be indented by 2")
	} else {
		emit(lit(substr($0, 3)))
	}
	next
}

# A ## heading starts or ends a section (not inside a fenced block of a skipped one).
/^## / && !fenced {
	if (state == "in")
		section_end()
	title = substr($0, 4)
	if (title in wanted) {
		state = "in"
		found[title] = 1
		heading = ""
		t = inl(title)
		gsub(/\\f[BIR]/, "", t)
		request(".SH", toupper(t))
	} else {
		state = "skip"
	}
	next
}

state == "skip" {
	if ($0 ~ /^ *```/)
		fenced = !fenced
	next
}

# ---- in a section ----

/^```/ {
	if ($0 !~ /^```[a-z]*[ \t]*$/)
		fail("a ``` line this script does not know: " $0)
	flush()
	print ".PP"
	print ".RS 4"
	print ".EX"
	mode = "code"
	next
}

/^#####/ || /^# / { fail("a heading this script does not know: " $0) }

/^####? / {
	flush()
	heading = $0
	sub(/^#+ /, "", heading)
	request(".SS", inl(heading))
	next
}

/^\|/ {
	if (mode == "tablehead") {
		if ($0 !~ /^\|( *:?-+:? *\|)+[ \t]*$/)
			fail("a table's second line must be |---|---|...")
		mode = "table"
		next
	}
	if (mode == "table") {
		table_row($0)
		next
	}
	flush()
	ncols = cells_of($0, head)
	t = ""
	for (i = 1; i <= ncols; i++)
		t = t (i > 1 ? "|" : "") head[i]
	keytable = (t == keyhead)
	if (title == "Key reference" && !keytable && head[1] == "Key")
		fail("a table of keys whose columns are not " keyhead)
	mode = "tablehead"
	next
}

mode == "tablehead" { fail("a table needs its |---| line") }

/^[ \t]*$/ {
	flush()
	next
}

/^- / {
	start_item(substr($0, 3))
	next
}

/^  ```/ {
	if (mode != "list")
		fail("an indented ``` block outside a list item")
	if ($0 !~ /^  ```[a-z]*[ \t]*$/)
		fail("a ``` line this script does not know: " $0)
	if (item != "") {
		print (itemstarted ? ".IP" : ".IP \\(bu 2")
		emit(inl(item))
		itemstarted = 1
		item = ""
	}
	print ".IP"
	print ".EX"
	mode = "listcode"
	next
}

/^  [^ ]/ {
	if (mode != "list")
		fail("an indented line outside a list item")
	item = item (item == "" ? "" : " ") trim($0)
	next
}

/^ / || /^\t/ { fail("indentation this script does not know (an indented code block?)") }
# "100. " inside a paragraph goes on with it (only "1. " starts a list there, as in CommonMark)
/^[0-9]+[.)] / && !(mode == "para" && !/^1[.)] /) { fail("a numbered list: not known to this script") }
/^[>*+<]/ || /^---/ || /^===/ { fail("Markdown this script does not know: " $0) }

{
	if (mode == "list")
		fail("a line after a list item that is neither indented nor after a blank line")
	if (mode == "table")
		flush()
	if (mode != "para") {
		flush()
		mode = "para"
		para = $0
	} else {
		para = para " " $0
	}
}

END {
	if (failed)
		exit 1
	if (state == "in")
		section_end()
	if (state == "title" || state == "intro")
		fail("no # title and first paragraph")
	for (i = 1; i <= nwant; i++)
		if (!(want[i] in found)) {
			printf "%s: no section \"## %s\"\n", FILENAME, want[i] > "/dev/stderr"
			exit 1
		}
	if (nkeys < 1) {
		printf "%s: no key table found\n", FILENAME > "/dev/stderr"
		exit 1
	}
	print ".SH \"SEE ALSO\""
	print ".BR migrate (1)"
}
