-- The parts of one data-set version: <version prefix><version>:<part>.
local parts = {'blob', 'ids', 'stats', 'meta', 'index'}
