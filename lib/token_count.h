/* Per-expert token counts (vocabulary specialisation): a hash of (expert, token id) -> count, plus token texts. */
#ifndef MOE_TOKEN_COUNT_H
#define MOE_TOKEN_COUNT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Memory grows with the distinct (expert, token) pairs seen, at most
 * experts x vocabulary; that is what the statistic needs. Texts returned
 * by moe_token_count_text() stay owned by the handle.
 */
struct moe_token_count;

struct moe_token_entry {
	uint32_t expert;
	uint32_t token;
	uint64_t count;
};

int moe_token_count_new(struct moe_token_count **out);
void moe_token_count_free(struct moe_token_count *c);
/* Adds n uses of token by expert. */
int moe_token_count_add(struct moe_token_count *c, uint32_t expert, uint32_t token, uint64_t n);
/* Remembers the first text seen for a token id. */
int moe_token_count_set_text(struct moe_token_count *c, uint32_t token, const char *text);
const char *moe_token_count_text(const struct moe_token_count *c, uint32_t token);
/* Adds all of b's counts and unknown texts into a. */
int moe_token_count_merge(struct moe_token_count *a, const struct moe_token_count *b);
/* malloc'd entries sorted by expert, count (descending), token; at most
 * per_expert per expert (0: all). */
int moe_token_count_entries(const struct moe_token_count *c, uint32_t per_expert,
	struct moe_token_entry **out, size_t *n);
/* All texts as malloc'd parallel arrays (ids sorted), for saving. */
int moe_token_count_texts(const struct moe_token_count *c, uint32_t **ids,
	const char ***texts, size_t *n);

#endif
