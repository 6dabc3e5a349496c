/* Queue ids from several shards: two queue processes started from the same config (nothing
 * tells them apart) make ids at the same moment, and no id may come from both (a Maildir
 * file is named by queue id: a second message with the same id would look delivered). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/queue.h"

#define PER_SHARD 50000
#define SHARDS 2

static int cmp_id(const void *a, const void *b) { return memcmp(a, b, QUEUE_ID_LEN); }

/* Each child is a shard: it waits for the start signal (so that both run at once, on
 * both cores), then makes PER_SHARD ids as fast as it can. */
static void test_two_shards_never_share_an_id(void **state)
{
    (void)state;
    size_t size = (size_t)SHARDS * PER_SHARD * (QUEUE_ID_LEN + 1);
    char *ids = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(ids != MAP_FAILED);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pids[SHARDS];
    for (int s = 0; s < SHARDS; s++) {
        pids[s] = fork();
        assert_true(pids[s] >= 0);
        if (pids[s] == 0) {
            close(go[1]);
            char c;
            if (read(go[0], &c, 1) < 0)
                _exit(3);
            char *mine = ids + (size_t)s * PER_SHARD * (QUEUE_ID_LEN + 1);
            for (int i = 0; i < PER_SHARD; i++)
                queue_new_id(mine + (size_t)i * (QUEUE_ID_LEN + 1));
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]); /* both start now */
    for (int s = 0; s < SHARDS; s++) {
        int st = 0;
        assert_int_equal(waitpid(pids[s], &st, 0), pids[s]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    /* Within a shard: 16 upper-case hex digits, strictly increasing. */
    for (int s = 0; s < SHARDS; s++) {
        const char *mine = ids + (size_t)s * PER_SHARD * (QUEUE_ID_LEN + 1);
        for (int i = 0; i < PER_SHARD; i++) {
            const char *id = mine + (size_t)i * (QUEUE_ID_LEN + 1);
            assert_int_equal(strlen(id), QUEUE_ID_LEN);
            for (int k = 0; k < QUEUE_ID_LEN; k++)
                assert_true(isxdigit((unsigned char)id[k]) && !islower((unsigned char)id[k]));
            if (i)
                assert_true(memcmp(id - (QUEUE_ID_LEN + 1), id, QUEUE_ID_LEN) < 0);
        }
    }
    /* Across shards: not one id in common. */
    qsort(ids, (size_t)SHARDS * PER_SHARD, QUEUE_ID_LEN + 1, cmp_id);
    int shared = 0;
    for (size_t i = 1; i < (size_t)SHARDS * PER_SHARD; i++)
        shared += memcmp(ids + (i - 1) * (QUEUE_ID_LEN + 1), ids + i * (QUEUE_ID_LEN + 1), QUEUE_ID_LEN) == 0;
    assert_int_equal(shared, 0);
    munmap(ids, size);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_shards_never_share_an_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
