/* Pre-tokenizers: llama.cpp's per-model regex word splitting, with its quirks, over PCRE2. */
#include "pretokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "error.h"

/*
 * How llama.cpp (b4748, unicode.cpp) splits, and how we reproduce it:
 *  - the two most common patterns (GPT-2's and Llama 3's) are not run as
 *    regexes but by hand-written splitters whose rules differ slightly from
 *    a regex engine (whitespace is its own fixed list, not \s); we port
 *    those splitters (RULE_GPT2, RULE_LLAMA3);
 *  - a pattern using \p{N}, \p{L}, \p{P}, \p{M} or \p{S} runs with
 *    std::regex on a "collapsed" text, one byte per code point: ASCII kept,
 *    other whitespace -> 0x0B, numbers 0xD1, letters 0xD2, punctuation
 *    0xD3, marks 0xD4, symbols 0xD5, anything else 0xD0, with \p{X}
 *    rewritten to a class holding that byte and the ASCII members
 *    (RULE_COLLAPSED; we run PCRE2 in byte mode);
 *  - any other pattern runs with std::wregex over code points in which
 *    non-ASCII whitespace is replaced by 0x0B (RULE_WIDE; PCRE2 UTF mode);
 *  - patterns with other Unicode properties (\p{Lu}, ...) or non-ASCII
 *    text next to \p{..}, which llama.cpp rejects, run with PCRE2's
 *    Unicode properties (RULE_UCP).
 * Each rule sees one piece at a time, so $ and lookaheads stop at the
 * piece's end; text between matches becomes a piece of its own.
 */

enum rule_kind { RULE_GPT2, RULE_LLAMA3, RULE_COLLAPSED, RULE_WIDE, RULE_UCP };

struct rule {
	enum rule_kind kind;
	pcre2_code *re;
};

struct moe_pretok {
	struct rule *rules;
	size_t n;
	int byte_level;
	pcre2_code *cat;     /* classifies one code point as N, L, P, M or S */
	uint8_t ascii[128];  /* flags of the ASCII code points */
};

/* Code point flags; F_IN marks a code point inside the current piece, so
 * 0 means "out of range" as llama.cpp's empty flags do. */
enum { F_IN = 1, F_NUM = 2, F_LET = 4, F_PUN = 8, F_WS = 16, F_MARK = 32, F_SYM = 64 };

#define OUT_OF_RANGE 0xFFFFFFFFu
/* Longest text split at once: its UTF-8 re-encoding (at most 4 bytes per
 * input byte) must index with 32 bits. */
#define MAX_SPLIT ((size_t)1 << 29)

static const char RE_GPT2[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char RE_LLAMA3[] =
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3_HF[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_CJK[] = "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+"; /* [一-龥ࠀ-一가-퟿]+ */

static const char *const PRE_DEFAULT[] = {
	"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]" };
static const char *const PRE_GPT2[] = { RE_GPT2 };
static const char *const PRE_LLAMA3[] = { RE_LLAMA3 };
static const char *const PRE_QWEN2[] = { RE_QWEN2 };
static const char *const PRE_FALCON[] = {
	"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]" };
static const char *const PRE_STARCODER[] = { "\\p{N}", RE_GPT2 };
static const char *const PRE_DEEPSEEK_CODER[] = {
	"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}" };
static const char *const PRE_DEEPSEEK_LLM[] = {
	"[\r\n]",
	"\\s?[A-Za-z\xc2\xb5\xc3\x80-\xc3\x96\xc3\x98-\xc3\xb6\xc3\xb8-\xc6\xba\xc6\xbc-\xc6\xbf"
	"\xc7\x84-\xca\x93\xca\x95-\xca\xaf\xcd\xb0-\xcd\xb3\xcd\xb6\xcd\xb7\xcd\xbb-\xcd\xbd"
	"\xcd\xbf\xce\x86\xce\x88-\xce\x8a\xce\x8c\xce\x8e-\xce\xa1\xce\xa3-\xcf\xb5\xcf\xb7-\xd2\x81"
	"\xd2\x8a-\xd4\xaf\xd4\xb1-\xd5\x96\xe1\x82\xa0-\xe1\x83\x85\xe1\x8e\xa0-\xe1\x8f\xb5"
	"\xe1\x8f\xb8-\xe1\x8f\xbd\xe1\xb2\x90-\xe1\xb2\xba\xe1\xb2\xbd-\xe1\xb2\xbf\xe1\xb4\x80-\xe1\xb4\xab"
	"\xe1\xb5\xab-\xe1\xb5\xb7\xe1\xb5\xb9-\xe1\xb6\x9a\xe1\xb8\x80-\xe1\xbc\x95\xe1\xbc\x98-\xe1\xbc\x9d"
	"\xe1\xbc\xa0-\xe1\xbd\x85\xe1\xbd\x88-\xe1\xbd\x8d\xe1\xbd\x90-\xe1\xbd\x97\xe1\xbd\x99\xe1\xbd\x9b"
	"\xe1\xbd\x9d\xe1\xbd\x9f-\xe1\xbd\xbd\xe1\xbe\x80-\xe1\xbe\xb4\xe1\xbe\xb6-\xe1\xbe\xbc\xe1\xbe\xbe"
	"\xe1\xbf\x82-\xe1\xbf\x84\xe1\xbf\x86-\xe1\xbf\x8c\xe1\xbf\x90-\xe1\xbf\x93\xe1\xbf\x96-\xe1\xbf\x9b"
	"\xe1\xbf\xa0-\xe1\xbf\xac\xe1\xbf\xb2-\xe1\xbf\xb4\xe1\xbf\xb6-\xe1\xbf\xbc\xe2\x84\x82\xe2\x84\x87"
	"\xe2\x84\x8a-\xe2\x84\x93\xe2\x84\x95\xe2\x84\x99-\xe2\x84\x9d\xe2\x84\xa4\xe2\x84\xa6\xe2\x84\xa8"
	"\xe2\x84\xaa-\xe2\x84\xad\xe2\x84\xaf-\xe2\x84\xb4\xe2\x84\xb9\xe2\x84\xbc-\xe2\x84\xbf"
	"\xe2\x85\x85-\xe2\x85\x89\xe2\x85\x8e\xe2\x86\x83\xe2\x86\x84\xe2\xb0\x80-\xe2\xb1\xbb"
	"\xe2\xb1\xbe-\xe2\xb3\xa4\xe2\xb3\xab-\xe2\xb3\xae\xe2\xb3\xb2\xe2\xb3\xb3\xea\x99\x80-\xea\x99\xad"
	"\xea\x9a\x80-\xea\x9a\x9b\xea\x9c\xa2-\xea\x9d\xaf\xea\x9d\xb1-\xea\x9e\x87\xea\x9e\x8b-\xea\x9e\x8e"
	"\xea\xad\xb0-\xea\xae\xbf\xef\xac\x80-\xef\xac\x86\xef\xac\x93-\xef\xac\x97\xef\xbc\xa1-\xef\xbc\xba"
	"\xef\xbd\x81-\xef\xbd\x9a\xf0\x90\x90\x80-\xf0\x90\x91\x8f\xf0\x90\x92\xb0-\xf0\x90\x93\x93"
	"\xf0\x90\x93\x98-\xf0\x90\x93\xbb\xf0\x90\xb2\x80-\xf0\x90\xb2\xb2\xf0\x90\xb3\x80-\xf0\x90\xb3\xb2"
	"\xf0\x91\xa2\xa0-\xf0\x91\xa3\x9f\xf0\x9e\xa4\x80-\xf0\x9e\xa5\x83]+",
	"\\s?[!-/:-~\xef\xbc\x81-\xef\xbc\x8f\xef\xbc\x9a-\xef\xbd\x9e\xe2\x80\x98-\xe2\x80\x9f\xe3\x80\x80-\xe3\x80\x82]+",
	"\\s+$",
	RE_CJK,
	"\\p{N}+" };
static const char *const PRE_DEEPSEEK3[] = {
	"\\p{N}{1,3}",
	"[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
	"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+" };
static const char *const PRE_PORO[] = {
	" ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+" };
static const char *const PRE_VIKING[] = {
	" ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+", "\\p{N}" };
static const char *const PRE_TEKKEN[] = {
	"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" };

#define LIST(a) a, sizeof a / sizeof a[0]

static const struct {
	const char *name;
	const char *const *regex;
	size_t n;
	unsigned flags;
} PRE_NAMES[] = {
	{ "default", LIST(PRE_DEFAULT), 0 },
	{ "llama3", LIST(PRE_LLAMA3), MOE_PRE_IGNORE_MERGES | MOE_PRE_ADD_BOS },
	{ "llama-v3", LIST(PRE_LLAMA3), MOE_PRE_IGNORE_MERGES | MOE_PRE_ADD_BOS },
	{ "llama-bpe", LIST(PRE_LLAMA3), MOE_PRE_IGNORE_MERGES | MOE_PRE_ADD_BOS },
	{ "falcon3", LIST(PRE_LLAMA3), MOE_PRE_IGNORE_MERGES | MOE_PRE_ADD_BOS },
	{ "dbrx", LIST(PRE_LLAMA3), 0 },
	{ "smaug-bpe", LIST(PRE_LLAMA3), 0 },
	{ "chatglm-bpe", LIST(PRE_LLAMA3), MOE_PRE_NO_BOS },
	{ "deepseek-llm", LIST(PRE_DEEPSEEK_LLM), 0 },
	{ "deepseek-coder", LIST(PRE_DEEPSEEK_CODER), 0 },
	{ "deepseek-v3", LIST(PRE_DEEPSEEK3), 0 },
	{ "falcon", LIST(PRE_FALCON), 0 },
	{ "mpt", LIST(PRE_GPT2), 0 },
	{ "gpt-2", LIST(PRE_GPT2), 0 },
	{ "phi-2", LIST(PRE_GPT2), 0 },
	{ "olmo", LIST(PRE_GPT2), 0 },
	{ "jais", LIST(PRE_GPT2), 0 },
	{ "gigachat", LIST(PRE_GPT2), 0 },
	{ "roberta-bpe", LIST(PRE_GPT2), 0 },
	{ "jina-es", LIST(PRE_GPT2), 0 },
	{ "jina-de", LIST(PRE_GPT2), 0 },
	{ "jina-v1-en", LIST(PRE_GPT2), 0 },
	{ "jina-v2-es", LIST(PRE_GPT2), 0 },
	{ "jina-v2-de", LIST(PRE_GPT2), 0 },
	{ "jina-v2-code", LIST(PRE_GPT2), 0 },
	{ "starcoder", LIST(PRE_STARCODER), 0 },
	{ "refact", LIST(PRE_STARCODER), 0 },
	{ "command-r", LIST(PRE_STARCODER), 0 },
	{ "smollm", LIST(PRE_STARCODER), 0 },
	{ "codeshell", LIST(PRE_STARCODER), 0 },
	{ "exaone", LIST(PRE_STARCODER), 0 },
	{ "minerva-7b", LIST(PRE_STARCODER), 0 },
	{ "qwen2", LIST(PRE_QWEN2), 0 },
	{ "stablelm2", LIST(PRE_QWEN2), 0 },
	{ "megrez", LIST(PRE_QWEN2), 0 },
	{ "poro-chat", LIST(PRE_PORO), 0 },
	{ "bloom", LIST(PRE_PORO), 0 },
	{ "gpt3-finnish", LIST(PRE_PORO), 0 },
	{ "viking", LIST(PRE_VIKING), 0 },
	{ "tekken", LIST(PRE_TEKKEN), MOE_PRE_IGNORE_MERGES | MOE_PRE_ADD_BOS },
};

int moe_pretok_lookup(const char *name, struct moe_pre_info *out)
{
	for (size_t i = 0; i < sizeof PRE_NAMES / sizeof PRE_NAMES[0]; i++)
		if (strcmp(name, PRE_NAMES[i].name) == 0) {
			out->regex = PRE_NAMES[i].regex;
			out->n_regex = PRE_NAMES[i].n;
			out->flags = PRE_NAMES[i].flags;
			return 0;
		}
	return MOE_ENOENT;
}

/* ---- UTF-8 and the byte-level alphabet ---- */

uint32_t moe_utf8_decode(const unsigned char *s, size_t n, size_t *len)
{
	unsigned c = s[0];
	size_t need;
	uint32_t cpt;

	if (c < 0x80) {
		*len = 1;
		return c;
	}
	if (!(c & 0x40))
		goto bad;
	if (!(c & 0x20)) {
		need = 2;
		cpt = c & 0x1f;
	} else if (!(c & 0x10)) {
		need = 3;
		cpt = c & 0x0f;
	} else if (!(c & 0x08)) {
		need = 4;
		cpt = c & 0x07;
	} else {
		goto bad;
	}
	if (need > n)
		goto bad;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		cpt = cpt << 6 | (s[i] & 0x3f);
	}
	*len = need;
	return cpt;
bad:
	*len = 1;
	return 0xFFFD;
}

/* Code points past U+10FFFF (llama.cpp throws on them) are written as U+FFFD. */
static size_t utf8_encode(uint32_t c, char *o)
{
	if (c > 0x10FFFF)
		c = 0xFFFD;
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | c >> 6);
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | c >> 12);
		o[1] = (char)(0x80 | (c >> 6 & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | c >> 18);
	o[1] = (char)(0x80 | (c >> 12 & 0x3f));
	o[2] = (char)(0x80 | (c >> 6 & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* GPT-2 keeps printable Latin-1 bytes as themselves and moves the other 68
 * bytes, in order, to U+0100.. */
static int byte_printable(unsigned b)
{
	return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
}

static uint32_t byte_cpt(unsigned b)
{
	unsigned k = 0;

	if (byte_printable(b))
		return b;
	for (unsigned i = 0; i < b; i++)
		k += !byte_printable(i);
	return 256 + k;
}

size_t moe_byte_to_unicode(uint8_t b, char out[2])
{
	char tmp[4];
	size_t n = utf8_encode(byte_cpt(b), tmp);

	memcpy(out, tmp, n);
	return n;
}

int moe_unicode_to_byte(uint32_t cpt)
{
	if (cpt < 256)
		return byte_printable(cpt) ? (int)cpt : -1;
	if (cpt >= 256 + 68)
		return -1;
	for (unsigned b = 0, k = 0; b < 256; b++)
		if (!byte_printable(b) && k++ == cpt - 256)
			return (int)b;
	return -1;
}

/* ---- code point classes ---- */

/* llama.cpp's whitespace list (unicode-data.cpp), not Unicode's \s. */
static int is_ws(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 ||
		c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
		c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* The category flag of u[0..n): which group of p->cat matched. */
static uint8_t category(const pcre2_code *cat, pcre2_match_data *md, const char *u, size_t n)
{
	static const uint8_t flag[] = { F_NUM, F_LET, F_PUN, F_MARK, F_SYM };
	int rc = pcre2_match(cat, (PCRE2_SPTR)u, n, 0, PCRE2_NO_UTF_CHECK, md, NULL);
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

	for (int g = 1; g < rc && g <= 5; g++)
		if (ov[2 * g] != PCRE2_UNSET)
			return flag[g - 1];
	return 0;
}

static uint8_t classify(const struct moe_pretok *p, pcre2_match_data *md, uint32_t c)
{
	uint8_t f = F_IN | (is_ws(c) ? F_WS : 0);
	char u[4];
	size_t n;

	if (c < 128)
		return p->ascii[c];
	if ((c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return f;
	n = utf8_encode(c, u);
	return f | category(p->cat, md, u, n);
}

/* ---- compiling rules ---- */

/* llama.cpp's rewrite of \p{X} for the collapsed text: its byte, then
 * the ASCII members. */
static const char *collapsed_class(char k)
{
	switch (k) {
	case 'N': return "\xd1" "0-9";
	case 'L': return "\xd2" "A-Za-z";
	case 'P': return "\xd3" "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}";
	case 'M': return "\xd4";
	case 'S': return "\xd5" "$+<->^`|~";
	default: return NULL;
	}
}

/* 1 if every \p{..} in re is N, L or P; 0 if there is none; -1 otherwise. */
static int uses_collapsible(const char *re)
{
	int found = 0;

	for (const char *s = re; (s = strstr(s, "\\p{")) != NULL; s += 3) {
		if (s[4] != '}' || collapsed_class(s[3]) == NULL)
			return -1;
		found = 1;
	}
	return found;
}

static char *collapse_regex(const char *re)
{
	size_t n = strlen(re);
	char *o = malloc(n * 8 + 1), *w = o;
	int inside = 0;

	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (re[i] == '[' && (i == 0 || re[i - 1] != '\\')) {
			*w++ = '[';
			inside = 1;
			continue;
		}
		if (inside && re[i] == ']' && re[i - 1] != '\\') {
			*w++ = ']';
			inside = 0;
			continue;
		}
		if (re[i] == '\\' && i + 4 < n && re[i + 1] == 'p' && re[i + 2] == '{' &&
		    re[i + 4] == '}' && collapsed_class(re[i + 3]) != NULL) {
			const char *cls = collapsed_class(re[i + 3]);

			if (!inside)
				*w++ = '[';
			w += strlen(strcpy(w, cls));
			if (!inside)
				*w++ = ']';
			i += 4;
			continue;
		}
		*w++ = re[i];
	}
	*w = '\0';
	return o;
}

static int is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

static int compile_rule(struct rule *r, const char *re, char *err, size_t errlen)
{
	int kind = uses_collapsible(re), ec;
	uint32_t opts = PCRE2_DOLLAR_ENDONLY;
	char *pat = NULL;
	const char *src = re;
	PCRE2_SIZE eo;

	if (strcmp(re, RE_GPT2) == 0) {
		r->kind = RULE_GPT2;
		return 0;
	}
	if (strcmp(re, RE_LLAMA3) == 0 || strcmp(re, RE_LLAMA3_HF) == 0) {
		r->kind = RULE_LLAMA3;
		return 0;
	}
	if (kind == 1 && is_ascii(re)) {
		r->kind = RULE_COLLAPSED;
		pat = collapse_regex(re);
		if (pat == NULL)
			return MOE_ENOMEM;
		src = pat;
	} else if (kind == 0) {
		r->kind = RULE_WIDE;
		opts |= PCRE2_UTF;
	} else {
		r->kind = RULE_UCP;
		opts |= PCRE2_UTF | PCRE2_UCP;
	}
	r->re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
	free(pat);
	if (r->re == NULL) {
		PCRE2_UCHAR msg[160];

		pcre2_get_error_message(ec, msg, sizeof msg);
		snprintf(err, errlen, "pre-tokenizer regex '%.80s': %s at offset %zu",
			re, (const char *)msg, (size_t)eo);
		return MOE_EUNSUP;
	}
	return 0;
}

void moe_pretok_free(struct moe_pretok *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		pcre2_code_free(p->rules[i].re);
	pcre2_code_free(p->cat);
	free(p->rules);
	free(p);
}

int moe_pretok_new(struct moe_pretok **out, const char *const *regex, size_t n,
	int byte_level, char *err, size_t errlen)
{
	struct moe_pretok *p = calloc(1, sizeof *p);
	pcre2_match_data *md = NULL;
	int ec, rc = MOE_ENOMEM;
	PCRE2_SIZE eo;

	*out = NULL;
	snprintf(err, errlen, "out of memory");
	if (p == NULL || (n > 0 && (p->rules = calloc(n, sizeof *p->rules)) == NULL))
		goto fail;
	p->byte_level = byte_level;
	for (; p->n < n; p->n++)
		if ((rc = compile_rule(&p->rules[p->n], regex[p->n], err, errlen)) != 0)
			goto fail;
	rc = MOE_ENOMEM;
	p->cat = pcre2_compile((PCRE2_SPTR)"(\\p{N})|(\\p{L})|(\\p{P})|(\\p{M})|(\\p{S})",
		PCRE2_ZERO_TERMINATED,
		PCRE2_UTF | PCRE2_ANCHORED, &ec, &eo, NULL);
	if (p->cat == NULL || (md = pcre2_match_data_create_from_pattern(p->cat, NULL)) == NULL)
		goto fail;
	for (uint32_t c = 0; c < 128; c++) {
		char u = (char)c;

		p->ascii[c] = F_IN | (is_ws(c) ? F_WS : 0) | category(p->cat, md, &u, 1);
	}
	pcre2_match_data_free(md);
	*out = p;
	return 0;
fail:
	pcre2_match_data_free(md);
	moe_pretok_free(p);
	return rc;
}

/* ---- splitting ---- */

/* One split pass: pieces (lengths in code points) in, pieces out. */
struct pass {
	const uint32_t *cpt;
	const uint8_t *fl;
	size_t *out;
	size_t n_out;
	/* piece being split: [ini, end) */
	size_t ini, end, prev;
};

static uint8_t fl_at(const struct pass *s, size_t pos)
{
	return pos >= s->ini && pos < s->end ? s->fl[pos] : 0;
}

static uint32_t cpt_at(const struct pass *s, size_t pos)
{
	return pos >= s->ini && pos < s->end ? s->cpt[pos] : OUT_OF_RANGE;
}

static size_t emit(struct pass *s, size_t end)
{
	size_t len = end - s->prev;

	if (len > 0)
		s->out[s->n_out++] = len;
	s->prev = end;
	return len;
}

static uint32_t ascii_lower(uint32_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's 't 're 've 'm 'll 'd at pos: length 2 or 3, else 0. */
static size_t contraction(const struct pass *s, size_t pos, int icase)
{
	uint32_t a, b;

	if (s->cpt[pos] != '\'' || pos + 1 >= s->end)
		return 0;
	a = cpt_at(s, pos + 1);
	if (icase)
		a = ascii_lower(a);
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 2;
	if (pos + 2 >= s->end)
		return 0;
	b = cpt_at(s, pos + 2);
	if (icase)
		b = ascii_lower(b);
	if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
		return 3;
	return 0;
}

#define NOT_WLN(f) (!((f) & (F_WS | F_LET | F_NUM)) && (f))

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static void split_gpt2(struct pass *s)
{
	size_t pos = s->ini;

	while (pos < s->end) {
		uint32_t c = s->cpt[pos];
		uint8_t f2 = c == ' ' ? fl_at(s, pos + 1) : s->fl[pos];
		size_t k = contraction(s, pos, 0), nws = 0;

		if (k) {
			pos += emit(s, pos + k);
			continue;
		}
		if (f2 & (F_LET | F_NUM)) {
			uint8_t want = f2 & F_LET ? F_LET : F_NUM;

			pos += c == ' ';
			while (f2 & want)
				f2 = fl_at(s, ++pos);
			emit(s, pos);
			continue;
		}
		if (NOT_WLN(f2)) {
			pos += c == ' ';
			while (NOT_WLN(f2))
				f2 = fl_at(s, ++pos);
			emit(s, pos);
			continue;
		}
		while (fl_at(s, pos + nws) & F_WS)
			nws++;
		if (nws > 1 && cpt_at(s, pos + nws) != OUT_OF_RANGE) {
			pos += nws - 1;
			emit(s, pos);
			continue;
		}
		if (nws > 0) {
			pos += nws;
			emit(s, pos);
			continue;
		}
		emit(s, ++pos);
	}
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void split_llama3(struct pass *s)
{
	size_t pos = s->ini;

	while (pos < s->end) {
		uint32_t c = s->cpt[pos];
		uint8_t f = s->fl[pos], f2;
		size_t k = contraction(s, pos, 1), nws = 0, last_nl = 0;

		if (k) {
			pos += emit(s, pos + k);
			continue;
		}
		if (!(c == '\r' || c == '\n' || (f & F_NUM)) &&
		    ((f & F_LET) || (fl_at(s, pos + 1) & F_LET))) {
			pos++;
			while (fl_at(s, pos) & F_LET)
				pos++;
			emit(s, pos);
			continue;
		}
		if (f & F_NUM) {
			size_t ini = pos;

			while (fl_at(s, pos) & F_NUM)
				if (++pos - ini >= 3) {
					emit(s, pos);
					ini = pos;
				}
			emit(s, pos);
			continue;
		}
		f2 = c == ' ' ? fl_at(s, pos + 1) : f;
		if (!(f2 & (F_WS | F_LET | F_NUM)) && f) {
			uint32_t c2;

			pos += c == ' ';
			while (NOT_WLN(f2))
				f2 = fl_at(s, ++pos);
			c2 = cpt_at(s, pos);
			while (c2 == '\r' || c2 == '\n')
				c2 = cpt_at(s, ++pos);
			emit(s, pos);
			continue;
		}
		while (fl_at(s, pos + nws) & F_WS) {
			uint32_t c2 = cpt_at(s, pos + nws);

			if (c2 == '\r' || c2 == '\n')
				last_nl = pos + nws + 1;
			nws++;
		}
		if (last_nl > 0) {
			pos = last_nl;
			emit(s, pos);
			continue;
		}
		if (nws > 1 && cpt_at(s, pos + nws) != OUT_OF_RANGE) {
			pos += nws - 1;
			emit(s, pos);
			continue;
		}
		if (nws > 0) {
			pos += nws;
			emit(s, pos);
			continue;
		}
		emit(s, ++pos);
	}
}

/* Subject text for the regex rules, built once per split. */
struct subject {
	char *collapsed;   /* one byte per code point */
	char *wide;        /* UTF-8 of the code points, non-ASCII whitespace as VT */
	uint32_t *wpos;    /* byte offset of code point i in wide; [n] = length */
	uint32_t *wcpt;    /* code point index of byte offset j (at boundaries) */
};

static int split_regex(struct pass *s, const struct rule *r, const struct subject *sub,
	pcre2_match_data *md)
{
	int coll = r->kind == RULE_COLLAPSED;
	const char *base = coll ? sub->collapsed + s->ini : sub->wide + sub->wpos[s->ini];
	size_t blen = coll ? s->end - s->ini : sub->wpos[s->end] - sub->wpos[s->ini];
	size_t boff = coll ? 0 : sub->wpos[s->ini];
	size_t at = 0;
	uint32_t mopt = coll ? 0 : PCRE2_NO_UTF_CHECK;

	while (at < blen) {
		int rc = pcre2_match(r->re, (PCRE2_SPTR)base, blen, at, mopt, md, NULL);
		PCRE2_SIZE *ov;
		size_t m0, m1;

		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0)
			return MOE_ERANGE;
		ov = pcre2_get_ovector_pointer(md);
		if (ov[1] <= ov[0] || ov[0] < at) {
			/* empty match: step one code point and search on */
			at++;
			while (!coll && at < blen && ((unsigned char)base[at] & 0xc0) == 0x80)
				at++;
			continue;
		}
		m0 = coll ? s->ini + ov[0] : sub->wcpt[boff + ov[0]];
		m1 = coll ? s->ini + ov[1] : sub->wcpt[boff + ov[1]];
		emit(s, m0);
		emit(s, m1);
		at = ov[1];
	}
	emit(s, s->end);
	return 0;
}

static void subject_release(struct subject *sub)
{
	free(sub->collapsed);
	free(sub->wide);
	free(sub->wpos);
	free(sub->wcpt);
}

static int subject_build(struct subject *sub, const uint32_t *cpt, const uint8_t *fl, size_t n)
{
	size_t w = 0;

	sub->collapsed = malloc(n + 1);
	sub->wide = malloc(4 * n + 1);
	sub->wpos = malloc((n + 1) * sizeof *sub->wpos);
	sub->wcpt = malloc((4 * n + 1) * sizeof *sub->wcpt);
	if (!sub->collapsed || !sub->wide || !sub->wpos || !sub->wcpt)
		return MOE_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = cpt[i];
		size_t k;

		if (c < 128)
			sub->collapsed[i] = (char)c;
		else if (fl[i] & F_WS)
			sub->collapsed[i] = 0x0b;
		else
			sub->collapsed[i] = (char)(fl[i] & F_NUM ? 0xd1 : fl[i] & F_LET ? 0xd2 :
				fl[i] & F_PUN ? 0xd3 : fl[i] & F_MARK ? 0xd4 :
				fl[i] & F_SYM ? 0xd5 : 0xd0);
		if (c >= 128 && (fl[i] & F_WS))
			c = 0x0b;
		else if ((c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
			c = 0xfffd;
		sub->wpos[i] = (uint32_t)w;
		k = utf8_encode(c, sub->wide + w);
		for (size_t j = 0; j < k; j++)
			sub->wcpt[w + j] = (uint32_t)i;
		w += k;
	}
	sub->wpos[n] = (uint32_t)w;
	sub->wcpt[w] = (uint32_t)n;
	return 0;
}

void moe_pretok_words_release(struct moe_pretok_words *w)
{
	free(w->text);
	free(w->end);
	memset(w, 0, sizeof *w);
}

/* Writes the words (pieces of cpt) as UTF-8, byte-level encoded if asked. */
static int write_words(const struct moe_pretok *p, const uint32_t *cpt, const size_t *len,
	size_t n_len, struct moe_pretok_words *w)
{
	size_t at = 0, o = 0, total = 0;

	for (size_t i = 0; i < n_len; i++)
		total += len[i];
	/* a code point is at most 4 bytes, each at most 2 when byte-level */
	w->text = malloc(8 * total + 1);
	w->end = malloc((n_len + 1) * sizeof *w->end);
	if (w->text == NULL || w->end == NULL)
		return MOE_ENOMEM;
	for (size_t i = 0; i < n_len; i++) {
		for (size_t j = 0; j < len[i]; j++, at++) {
			char u[4];
			size_t k = utf8_encode(cpt[at], u);

			if (!p->byte_level) {
				memcpy(w->text + o, u, k);
				o += k;
				continue;
			}
			for (size_t b = 0; b < k; b++)
				o += moe_byte_to_unicode((uint8_t)u[b], w->text + o);
		}
		w->end[i] = o;
	}
	w->n = n_len;
	return 0;
}

int moe_pretok_split(const struct moe_pretok *p, const char *text, size_t len,
	struct moe_pretok_words *w)
{
	uint32_t *cpt = malloc((len + 1) * sizeof *cpt);
	uint8_t *fl = malloc(len + 1);
	size_t *a = malloc((len + 1) * sizeof *a), *b = malloc((len + 1) * sizeof *b);
	pcre2_match_data *md = pcre2_match_data_create(32, NULL);
	struct subject sub = { 0 };
	size_t n = 0, na;
	int rc = MOE_ENOMEM, need_sub = 0;

	memset(w, 0, sizeof *w);
	if (len > MAX_SPLIT) {
		rc = MOE_ERANGE;
		goto out;
	}
	if (cpt == NULL || fl == NULL || a == NULL || b == NULL || md == NULL)
		goto out;
	for (size_t i = 0, k; i < len; i += k)
		cpt[n++] = moe_utf8_decode((const unsigned char *)text + i, len - i, &k);
	for (size_t i = 0; i < n; i++)
		fl[i] = classify(p, md, cpt[i]);
	for (size_t i = 0; i < p->n; i++)
		need_sub |= p->rules[i].kind >= RULE_COLLAPSED;
	if (need_sub && (rc = subject_build(&sub, cpt, fl, n)) != 0)
		goto out;
	na = 0;
	if (n > 0)
		a[na++] = n;
	for (size_t r = 0; r < p->n; r++) {
		struct pass s = { cpt, fl, b, 0, 0, 0, 0 };
		size_t *t;

		for (size_t i = 0, start = 0; i < na; start += a[i++]) {
			s.ini = s.prev = start;
			s.end = start + a[i];
			if (p->rules[r].kind == RULE_GPT2)
				split_gpt2(&s);
			else if (p->rules[r].kind == RULE_LLAMA3)
				split_llama3(&s);
			else if ((rc = split_regex(&s, &p->rules[r], &sub, md)) != 0)
				goto out;
		}
		t = a;
		a = b;
		b = t;
		na = s.n_out;
	}
	rc = write_words(p, cpt, a, na, w);
out:
	if (rc != 0)
		moe_pretok_words_release(w);
	subject_release(&sub);
	pcre2_match_data_free(md);
	free(cpt);
	free(fl);
	free(a);
	free(b);
	return rc;
}
