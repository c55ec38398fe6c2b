# Packaging.cmake -- install rules for everything but the programs: data files, manuals,
# systemd units, sysusers.d and tmpfiles.d files, configuration, documentation.
#
#   cmake --install build --prefix /usr      what both packages hold (programs included:
#                                            their install() rules sit next to the targets)
#   dpkg-buildpackage -us -uc -b             the Debian packages tonghop-collector and
#                                            tonghop-publish (debian/; the split between
#                                            the two is in debian/*.install)
#
# debian/ is the only source of package metadata (names, descriptions, dependencies,
# maintainer scripts); there is no CPack configuration.

set(TH_PKG_DIR ${TH_SOURCE_DIR}/packaging)
set(TH_SHARE ${CMAKE_INSTALL_DATADIR}/tonghop)

# -- data files: everything the server needs at run time
install(DIRECTORY ${TH_SOURCE_DIR}/schema/appendices/ DESTINATION ${TH_SHARE}/appendices
        FILES_MATCHING PATTERN "*.def" PATTERN "*.md")
install(FILES ${TH_SOURCE_DIR}/data/hanoi-2021.units ${TH_SOURCE_DIR}/data/vn-2021.units
        DESTINATION ${TH_SHARE}/units)

# -- manual pages, by section
file(GLOB TH_MAN_PAGES CONFIGURE_DEPENDS ${TH_SOURCE_DIR}/docs/man/*.[158])
foreach(f ${TH_MAN_PAGES})
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" sec ${f})
  install(FILES ${f} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${sec})
endforeach()

# -- services: units, users and groups, state directories (systemd's directories under
# the prefix: /usr/lib/systemd/system, /usr/lib/sysusers.d, /usr/lib/tmpfiles.d), and the
# configuration, always in /etc/tonghop
foreach(p tonghop-collector tonghop-publish)
  install(FILES ${TH_PKG_DIR}/${p}.service DESTINATION lib/systemd/system)
  install(FILES ${TH_PKG_DIR}/${p}.sysusers DESTINATION lib/sysusers.d RENAME ${p}.conf)
  install(FILES ${TH_PKG_DIR}/${p}.tmpfiles DESTINATION lib/tmpfiles.d RENAME ${p}.conf)
endforeach()
install(FILES ${TH_PKG_DIR}/publish.conf ${TH_PKG_DIR}/collector.conf DESTINATION /etc/tonghop)

# -- documentation, in each package's doc folder
foreach(p tonghop-collector tonghop-publish)
  install(FILES ${TH_SOURCE_DIR}/docs/operator-guide.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${p})
endforeach()
install(FILES ${TH_SOURCE_DIR}/docs/metrics.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/tonghop-collector)
