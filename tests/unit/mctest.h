/*
 * mctest.h - what every cmocka test file includes.
 */
#ifndef MC_TEST_H
#define MC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#endif
