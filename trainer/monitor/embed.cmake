# cmake -DIN=file -DOUT=file.c -P embed.cmake: a file as a C byte array
# (seqpar_dashboard_html, seqpar_dashboard_html_len).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "/* generated from dashboard.html by embed.cmake */\n#include <stddef.h>\n"
     "const unsigned char seqpar_dashboard_html[] = {\n${bytes}0x00};\n"
     "const size_t seqpar_dashboard_html_len = ${len};\n")
