# bicctl tests: the command core (cmocka) and bicctl against the real gateway and bic-sim.
# Included from tests/gateway/CMakeLists.txt.
if(TARGET bicctlcore)
    bic_add_unit_test(test_bicctl_cmd SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bicctl_cmd.c
        LIBS bicctlcore LABELS gateway)
endif()
if(TARGET bicctl AND TARGET bic-can-gateway AND TARGET bic-sim)
    bic_add_py_test(test_bicctl ${CMAKE_CURRENT_LIST_DIR}/test_bicctl.py
        LABELS gateway TIMEOUT 120)
    bic_add_py_test(test_bicctl_npb ${CMAKE_CURRENT_LIST_DIR}/test_bicctl_npb.py
        LABELS gateway TIMEOUT 120)
endif()
