DROP INDEX disputes_charge;
DROP TABLE charges;
