/* Queue logic without the store: retry schedule, hop counting, id format and order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <string.h>

#include "queue/queue.h"

static void test_retry_schedule_doubles_and_caps(void **state)
{
    (void)state;
    assert_int_equal(queue_retry_delay(1, 300, 3600), 300);
    assert_int_equal(queue_retry_delay(2, 300, 3600), 600);
    assert_int_equal(queue_retry_delay(3, 300, 3600), 1200);
    assert_int_equal(queue_retry_delay(4, 300, 3600), 2400);
    assert_int_equal(queue_retry_delay(5, 300, 3600), 3600);
    assert_int_equal(queue_retry_delay(500, 300, 3600), 3600);
    assert_int_equal(queue_retry_delay(0, 1, 4), 1);
}

static void test_received_hops_counted_in_header_only(void **state)
{
    (void)state;
    const char *m = "Received: a\r\nreceived: b\r\n\tcontinued\r\nSubject: x\r\n\r\nReceived: in body\r\n";
    assert_int_equal(queue_count_received((const uint8_t *)m, strlen(m)), 2);
    const char *none = "\r\nReceived: body only\r\n";
    assert_int_equal(queue_count_received((const uint8_t *)none, strlen(none)), 0);
}

static void test_ids_are_unique_sorted_hex(void **state)
{
    (void)state;
    char prev[QUEUE_ID_LEN + 1] = "", id[QUEUE_ID_LEN + 1];
    for (int i = 0; i < 20000; i++) {
        queue_new_id(id);
        assert_int_equal(strlen(id), QUEUE_ID_LEN);
        for (int k = 0; k < QUEUE_ID_LEN; k++)
            assert_true(isxdigit((unsigned char)id[k]) && !islower((unsigned char)id[k]));
        assert_true(strcmp(prev, id) < 0);
        memcpy(prev, id, sizeof id);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_schedule_doubles_and_caps),
        cmocka_unit_test(test_received_hops_counted_in_header_only),
        cmocka_unit_test(test_ids_are_unique_sorted_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
